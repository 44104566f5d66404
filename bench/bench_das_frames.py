"""Time DAS frame generation against one DeepLabV3+ R-50-D8 training step.

What is timed, for one batch of N images of H x W (Cityscapes crop by
default) and a T-frame policy:

- ``device frames``: the on-device path of ``DASSegDataPreProcessor``
  (normalise + all N*T frames in one batched grid_sample);
- ``cpu transform``: ``DASImageToVideo`` on the N images one by one, as
  dataloader workers would run it (single process here);
- ``inverse warp 1/4``: the fusion head's inverse warp of N*T 19-class logit
  maps at 1/4 resolution (DeepLabV3+'s output stride after the decoder);
- ``inverse warp full``: the same at full resolution (fusion after
  upsampling);
- ``2D train step``: one ``train_step`` (preprocess, forward, backward, SGD)
  of mmseg's DeepLabV3+ R-50-D8 (BN, ``pretrained=None``) on the same batch
  of 3-channel images.

The ratio ``(device frames + inverse warps) / 2D step`` is an upper bound on
the overhead: a DAS model runs the backbone on N*T frames, so its step costs
several times the 2D step.

Example::

    OMP_NUM_THREADS=1 python bench/bench_das_frames.py --device cpu \\
        --batch 1 --iters 3 --step-iters 1
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import mmdas  # noqa: E402,F401
from mmdas.datasets.transforms import DASImageToVideo  # noqa: E402
from mmdas.geometry import inverse_warp  # noqa: E402
from mmdas.models import DASSegDataPreProcessor  # noqa: E402

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
CONFIG = 'deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda'
                        if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--height', type=int, default=512)
    parser.add_argument('--width', type=int, default=1024)
    parser.add_argument('--num-frames', type=int, default=8)
    parser.add_argument('--num-classes', type=int, default=19)
    parser.add_argument('--iters', type=int, default=10,
                        help='timed iterations of the cheap parts')
    parser.add_argument('--step-iters', type=int, default=None,
                        help='timed training steps (default: --iters)')
    parser.add_argument('--skip-step', action='store_true',
                        help='do not time the DeepLabV3+ step')
    return parser.parse_args()


def timeit(fn, device, iters, warmup=1, what=''):
    """Mean seconds of ``fn`` over ``iters`` runs after ``warmup`` runs,
    with a progress bar over all of them."""
    from mmengine.utils import ProgressBar
    print(f'timing {what}', flush=True)
    bar = ProgressBar(warmup + iters)
    for _ in range(warmup):
        fn()
        bar.update()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    total = 0.0
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        total += time.perf_counter() - start
        bar.update()  # outside the timed span
    print(flush=True)
    return total / iters


def build_deeplab(device, num_classes, size):
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    try:
        cfg = Config.fromfile(f'mmseg::{CONFIG}')
    except Exception:  # no pkg_resources: read the wheel's copy directly
        import mmseg
        cfg = Config.fromfile(
            osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', CONFIG))
    init_default_scope('mmseg')
    model_cfg = cfg.model
    model_cfg.pretrained = None
    # the config pads every batch to its 512x1024 crop: pad to ours instead
    model_cfg.data_preprocessor.size = size
    model_cfg.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    for head in ('decode_head', 'auxiliary_head'):
        model_cfg[head].norm_cfg = dict(type='BN', requires_grad=True)
        model_cfg[head].num_classes = num_classes
    model = MODELS.build(model_cfg).to(device)
    model.train()
    optim = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    return model, optim


def main():
    args = parse_args()
    device = torch.device(args.device)
    n, h, w, t = args.batch, args.height, args.width, args.num_frames
    policy = dict(
        transforms=[
            dict(op='translate_x', magnitude=0.05),
            dict(op='rotate', magnitude=5.0)
        ],
        num_frames=t)
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
              for _ in range(n)]
    labels = [rng.randint(0, args.num_classes, (h, w)).astype(np.uint8)
              for _ in range(n)]

    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    def batch():
        samples = []
        for label in labels:
            sample = SegDataSample()
            sample.gt_sem_seg = PixelData(
                data=torch.from_numpy(label[None].astype(np.int64)))
            sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
            samples.append(sample)
        return dict(
            inputs=[torch.from_numpy(i).permute(2, 0, 1).contiguous()
                    for i in images],
            data_samples=samples)

    rows = []
    pre = DASSegDataPreProcessor(
        policy=policy, mean=MEAN, std=STD, bgr_to_rgb=True,
        size=(h, w)).to(device)
    data = batch()
    out = pre(data, True)
    assert out['inputs'].shape == (n, t * 3, h, w)
    name = 'device frames (preprocessor)'
    rows.append((name, timeit(lambda: pre(data, True), device, args.iters,
                              what=name)))

    to_video = DASImageToVideo(policy)
    name = 'cpu transform (N images)'
    rows.append((name,
                 timeit(lambda: [to_video(dict(img=i, gt_seg_map=s))
                                 for i, s in zip(images, labels)],
                        torch.device('cpu'), max(1, args.iters // 2),
                        what=name)))

    mats = out['data_samples'][0].das_matrices
    mats = mats[None].expand(n, -1, -1, -1).reshape(n * t, 3, 3)
    for tag, (lh, lw) in (('1/4', (h // 4, w // 4)), ('full', (h, w))):
        logits = torch.randn(n * t, args.num_classes, lh, lw, device=device)
        name = f'inverse warp {tag} ({lh}x{lw}, {args.num_classes} cls)'
        rows.append((name,
                     timeit(lambda: inverse_warp(logits, mats), device,
                            args.iters, what=name)))
        del logits

    step = None
    if not args.skip_step:
        model, optim = build_deeplab(device, args.num_classes, (h, w))
        # the stock 2D preprocessor inside the model normalises the images
        step = timeit(lambda: model.train_step(batch(), optim), device,
                      args.step_iters or args.iters,
                      what='2D DeepLabV3+ train step')
        rows.append(('2D DeepLabV3+ R-50-D8 train step', step))

    print(f'\ndevice={device} ({torch.get_num_threads()} threads), N={n}, '
          f'{h}x{w}, T={t}, torch {torch.__version__}')
    print(f'{"part":48s} {"ms":>10s} {"% of step":>10s}')
    for name, sec in rows:
        share = f'{100 * sec / step:9.2f}%' if step else ''
        print(f'{name:48s} {1000 * sec:10.1f} {share:>10s}')
    if step:
        gen = rows[0][1]
        for tag, inv in (('1/4', rows[2][1]), ('full', rows[3][1])):
            print(f'device frames + inverse warp {tag}: '
                  f'{100 * (gen + inv) / step:.2f}% of the 2D step '
                  f'(goal: <= 5%)')


if __name__ == '__main__':
    main()
