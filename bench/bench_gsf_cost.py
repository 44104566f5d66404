"""Cost of GSF: parameters, FLOPs per frame and DeepLabV3+ step time.

1. Parameters and FLOPs per frame of GSF-ResNet-50 against ResNet-50
   (mmpretrain layout, 224x224, mmengine's ``FlopAnalyzer``), and of the
   DeepLabV3+ D8 backbone pair (``ResNetV1c``).
2. Training-step time of DeepLabV3+ GSF-R50-D8 on a batch of B images of T
   frames (inverse-warp fusion included) against T times the 2D DeepLabV3+
   R50-D8 step on B one-frame images, and against one 2D step on B*T frames
   (same pixels), in one run, interleaved so that load changes hit all.
   B defaults to 2 because the ASPP image-pool BN cannot train on batch 1.

Example (CPU, small crop)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/bench_gsf_cost.py \
        --device cpu --crop 128 --frames 4 --iters 5
"""
import argparse
import time

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

import mmdas  # noqa: F401
from mmdas import geometry

BN = dict(type='BN', requires_grad=True)
D8 = dict(dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
          contract_dilation=True)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def flops(model, inputs):
    model.eval()
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    total = analyzer.total()
    return total, dict(analyzer.unsupported_ops())


def backbone_costs(frames, size):
    from mmpretrain.models.backbones import ResNet
    from mmseg.models.backbones import ResNetV1c

    from mmdas.models.backbones import GSFResNet, GSFResNetV1c
    rows = []
    pairs = [('ResNet-50 (mmpretrain)', ResNet(depth=50),
              GSFResNet(depth=50, num_frames=frames)),
             ('ResNetV1c-50-D8 (mmseg)', ResNetV1c(depth=50, **D8),
              GSFResNetV1c(depth=50, num_frames=frames, **D8))]
    for name, plain, video in pairs:
        x = torch.randn(frames, 3, size, size)
        f2d, _ = flops(plain, (x[:1], ))
        fvid, unsupported = flops(video, (x.view(1, -1, size, size), ))
        rows.append(
            dict(name=name, params_2d=count_params(plain),
                 params_gsf=count_params(video), flops_2d=f2d,
                 flops_gsf_per_frame=fvid / frames, unsupported=unsupported))
    return rows


def segmentor(video, frames):
    from mmseg.registry import MODELS
    backbone = dict(type='ResNetV1c', depth=50, norm_cfg=BN, **D8)
    decode = dict(type='DepthwiseSeparableASPPHead', in_channels=2048,
                  in_index=3, channels=512, dilations=(1, 12, 24, 36),
                  c1_in_channels=256, c1_channels=48, dropout_ratio=0.1,
                  num_classes=19, norm_cfg=BN, align_corners=False,
                  loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))
    aux = dict(type='FCNHead', in_channels=1024, in_index=2, channels=256,
               num_convs=1, concat_input=False, dropout_ratio=0.1,
               num_classes=19, norm_cfg=BN, align_corners=False,
               loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4))
    if video:
        backbone.update(type='GSFResNetV1c', num_frames=frames)
        decode = dict(type='TemporalFusionHead',
                      wrapped_type=decode.pop('type'), **decode)
        aux = dict(type='TemporalFusionHead', wrapped_type=aux.pop('type'),
                   **aux)
    return MODELS.build(
        ConfigDict(type='EncoderDecoder', backbone=backbone,
                   decode_head=decode, auxiliary_head=aux, train_cfg=dict(),
                   test_cfg=dict(mode='whole')))


def samples(n, crop, mats=None):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    out = []
    for _ in range(n):
        s = SegDataSample()
        meta = dict(img_shape=(crop, crop), ori_shape=(crop, crop),
                    pad_shape=(crop, crop))
        if mats is not None:
            meta['das_matrices'] = mats
        s.set_metainfo(meta)
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, 19, (1, crop, crop)))
        out.append(s)
    return out


def step_times(frames, crop, iters, device, batch):
    torch.manual_seed(0)
    video, plain = segmentor(True, frames), segmentor(False, frames)
    models = dict(video=video, plain=plain)
    opts = {}
    for key, model in models.items():
        model.init_weights()
        model.to(device).train()
        opts[key] = torch.optim.SGD(model.parameters(), lr=1e-3)
    mats = geometry.op_matrices('translate_x', 0.05,
                                geometry.frame_offsets(frames), crop, crop)
    data = dict(
        video=(torch.randn(batch, 3 * frames, crop, crop, device=device),
               samples(batch, crop, mats.to(device))),
        plain1=(torch.randn(batch, 3, crop, crop, device=device),
                samples(batch, crop)),
        plainT=(torch.randn(batch * frames, 3, crop, crop, device=device),
                samples(batch * frames, crop)))

    def step(key):
        model = models['video' if key == 'video' else 'plain']
        opt = opts['video' if key == 'video' else 'plain']
        inputs, data_samples = data[key]
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        losses = model.loss(inputs, data_samples)
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    print(f'timing {len(data)} kinds of training step, 1 + {iters} each',
          flush=True)
    bar = ProgressBar((1 + iters) * len(data))
    for key in data:  # warm-up
        step(key)
        bar.update()
    times = {key: [] for key in data}
    for _ in range(iters):  # interleaved: load changes hit all three
        for key in data:
            times[key].append(step(key))
            bar.update()
    print(flush=True)
    return {key: sorted(v)[len(v) // 2] for key, v in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--frames', type=int, default=4)
    parser.add_argument('--crop', type=int, default=128,
                        help='square training crop of the step benchmark')
    parser.add_argument('--flops-size', type=int, default=224)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--batch', type=int, default=2,
                        help='images per step (>= 2: ASPP image-pool BN)')
    args = parser.parse_args()
    init_default_scope('mmseg')

    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, '
          f'device {args.device}, T={args.frames}')
    for row in backbone_costs(args.frames, args.flops_size):
        dp = row['params_gsf'] / row['params_2d'] - 1
        df = row['flops_gsf_per_frame'] / row['flops_2d'] - 1
        print(f"{row['name']}: params {row['params_2d'] / 1e6:.3f}M -> "
              f"{row['params_gsf'] / 1e6:.3f}M (+{100 * dp:.3f}%); "
              f"FLOPs/frame at {args.flops_size}px "
              f"{row['flops_2d'] / 1e9:.3f}G -> "
              f"{row['flops_gsf_per_frame'] / 1e9:.3f}G (+{100 * df:.3f}%)")
        print(f"  ops the analyzer does not count: {row['unsupported']}")

    t = step_times(args.frames, args.crop, args.iters, args.device,
                   args.batch)
    ratio1 = t['video'] / (args.frames * t['plain1'])
    ratioT = t['video'] / t['plainT']
    b, n = args.batch, args.frames
    print(f"DeepLabV3+ R50-D8 train step, {b} images, crop {args.crop}, "
          f"median of {args.iters}: GSF {b}x{n} frames {t['video']:.3f}s; "
          f"2D batch {b} {t['plain1']:.3f}s (x{n} = {n * t['plain1']:.3f}s);"
          f" 2D batch {b * n} {t['plainT']:.3f}s")
    print(f'ratio GSF / (T x 2D step) = {ratio1:.3f}; '
          f'ratio GSF / 2D step on T frames = {ratioT:.3f}')


if __name__ == '__main__':
    main()
