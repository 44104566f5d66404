"""Temporal fusion heads: inverse-warp alignment, mmseg/mmpretrain models,
and the num_frames=1 equivalence with the stock 2D models."""
import copy
import math

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

import mmdas  # noqa: F401
from mmdas import geometry
from mmdas.models.decode_heads import TemporalFusionHead
from mmdas.models.heads import TemporalAvgClsHead

NUM_CLASSES = 3
BN = dict(type='BN', requires_grad=True)
D8 = dict(dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
          contract_dilation=True)
ASPP = dict(in_channels=512, in_index=3, channels=16, dilations=(1, 2),
            c1_in_channels=64, c1_channels=8, dropout_ratio=0.,
            num_classes=NUM_CLASSES, norm_cfg=BN, align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))
FCN = dict(in_channels=256, in_index=2, channels=8, num_convs=1,
           concat_input=False, dropout_ratio=0., num_classes=NUM_CLASSES,
           norm_cfg=BN, align_corners=False,
           loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4))


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _smooth_map(h=32, w=40):
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w),
                            indexing='ij')
    return torch.stack([torch.sin(3 * xs + ys), torch.cos(2 * ys - xs),
                        xs * ys])[None]  # 1, 3, h, w


def _fcn_head(**kwargs):
    return TemporalFusionHead(wrapped_type='FCNHead', in_channels=4,
                              channels=4, num_convs=1, num_classes=3,
                              **kwargs)


def _frames_of(image_map, mats):
    t = mats.shape[0]
    return geometry.warp(image_map.expand(t, -1, -1, -1), mats)


def test_inverse_warp_fusion_restores_alignment_exactly_for_translation():
    h, w = 32, 40
    image_map = _smooth_map(h, w)
    offsets = geometry.frame_offsets(3)  # -1, 0, 1: frame 1 is the image
    mats = geometry.op_matrices('translate_x', 3 / w, offsets, h, w)
    frames = torch.cat([_frames_of(image_map, mats)] * 2)  # 2 images
    metas = [dict(das_matrices=mats), dict(das_matrices=mats.numpy())]
    fused = _fcn_head(num_frames=3).fuse(frames, metas)
    assert fused.shape == (2, 3, h, w)
    # every pixel is valid in the middle frame; the shifted frames agree with
    # it where valid, so the fusion is the map itself
    assert torch.allclose(fused, image_map.expand(2, -1, -1, -1), atol=1e-5)
    # plain averaging (the paper code) is misaligned, and is the mean
    mean = _fcn_head(fusion='mean').fuse(frames, metas)
    assert torch.allclose(mean, frames.view(2, 3, 3, h, w).mean(1))
    assert (mean - image_map).abs().max() > 0.05


def test_inverse_warp_fusion_with_rotation_and_no_reference_frame():
    h, w = 32, 40
    image_map = _smooth_map(h, w)
    offsets = torch.tensor([1., 2.])  # no frame is the image itself
    mats = geometry.op_matrices('rotate', 8., offsets, h, w)
    frames = _frames_of(image_map, mats)
    fused = _fcn_head().fuse(frames, [dict(das_matrices=mats)])
    _, valid = geometry.inverse_warp(frames, mats)
    inside = valid.any(0, keepdim=True).expand_as(fused)
    err_warp = (fused - image_map)[inside].abs().mean()
    err_mean = (frames.mean(0, keepdim=True) - image_map)[inside].abs().mean()
    assert err_warp < 0.02 < err_mean
    # pixels inside no frame fall back to the plain mean of the frames
    assert (~inside).any()
    assert torch.allclose(fused[~inside],
                          frames.mean(0, keepdim=True)[~inside])


def test_fusion_keeps_no_half_pixel_border_band():
    """Frames shifted by a third of a pixel: constant logits fuse to the
    constant, without zeros blended in along the border."""
    h, w = 8, 12
    mats = geometry.op_matrices('translate_x', 1 / (3 * w),
                                geometry.frame_offsets(3), h, w)
    logits = torch.full((3, 3, h, w), 200.0)
    fused = _fcn_head().fuse(logits, [dict(das_matrices=mats)])
    assert torch.allclose(fused, torch.tensor(200.0))


def _smooth_image(h, w):
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32),
        torch.arange(w, dtype=torch.float32),
        indexing='ij')
    img = torch.stack([
        128 + 100 * torch.sin(xs / 9 + ys / 13),
        128 + 100 * torch.cos(ys / 7 - xs / 17),
        128 + 60 * torch.sin((xs + ys) / 11)
    ])
    return img.round().clamp(0, 255).to(torch.uint8)  # [3, h, w]


def _das_batch(mode, img, size):
    """One image through the DAS seg preprocessor (frames from the pipeline
    or made on the device), padded to ``size``."""
    from mmdas.datasets.transforms import DASImageToVideo, PackDASSegInputs
    from mmdas.models import DASSegDataPreProcessor
    from mmseg.datasets.transforms import PackSegInputs
    policy = dict(transforms=[dict(op='rotate', magnitude=10.0)],
                  num_frames=3)
    h, w = img.shape[-2:]
    sample = dict(img=img.permute(1, 2, 0).numpy().copy(),
                  gt_seg_map=np.zeros((h, w), np.uint8), img_shape=(h, w))
    if mode == 'pipeline':
        packed = PackDASSegInputs()(DASImageToVideo(policy)(sample))
        pre = DASSegDataPreProcessor(size=size)
    else:
        packed = PackSegInputs()(sample)
        pre = DASSegDataPreProcessor(policy=policy, size=size)
    return pre(dict(inputs=[packed['inputs']],
                    data_samples=[packed['data_samples']]), True)


@pytest.mark.parametrize('mode', ['pipeline', 'policy'])
@pytest.mark.parametrize('stride', [1, 4])
def test_inverse_warp_of_a_padded_batch_restores_the_image(mode, stride):
    """Issue 11.1: a 40x60 image turned 10 degrees per frame, padded to
    64x96. With frames as "logits" (at full resolution or stride 4), the
    fused map is the image's own map, as without padding."""
    h, w = 40, 60
    img = _smooth_image(h, w)
    pool = torch.nn.functional.avg_pool2d
    results = {}
    for size in [(h, w), (64, 96)]:
        out = _das_batch(mode, img, size)
        frames = out['inputs'].view(3, 3, *size)  # T, C, H, W
        logits = pool(frames, stride)
        fused = _fcn_head().fuse(logits, out['data_samples'])[0]
        results[size] = fused[:, :h // stride, :w // stride]
        known = pool(img[None].float(), stride)[0]
    for fused in results.values():
        err = (fused - known).abs()
        assert err.max() < (1.0 if stride == 1 else 4.0), err.max()
    assert torch.allclose(results[(h, w)], results[(64, 96)], atol=1e-3)


def _das_images(images, size, op, magnitude):
    """Images of different sizes through the DAS seg preprocessor, padded to
    one ``size`` canvas, frames made on the device."""
    from mmdas.models import DASSegDataPreProcessor
    from mmseg.datasets.transforms import PackSegInputs
    packed = [
        PackSegInputs()(dict(img=img.permute(1, 2, 0).numpy().copy(),
                             gt_seg_map=np.zeros(img.shape[-2:], np.uint8),
                             img_shape=tuple(img.shape[-2:])))
        for img in images
    ]
    policy = dict(transforms=[dict(op=op, magnitude=magnitude)],
                  num_frames=3)
    pre = DASSegDataPreProcessor(policy=policy, size=size)
    return pre(dict(inputs=[p['inputs'] for p in packed],
                    data_samples=[p['data_samples'] for p in packed]), True)


@pytest.mark.parametrize('stride', [4, 8])
@pytest.mark.parametrize('op,magnitude', [('rotate', 10.0),
                                          ('translate_x', 0.05),
                                          ('scale', 1.1)])
def test_fusion_at_stride_4_and_8_keeps_black_fill_and_padding_out(
        stride, op, magnitude):
    """Issue 21.5: a batch of a 37x53 and a 40x64 image of constant 200,
    padded to 64x96; frames filled with black, "logits" the frames pooled
    at the head's stride. Every logit pixel inside an image fuses to 200:
    none takes in black fill or padding (validity decided on the logit grid
    alone let the last rows and columns reach errors of ~80). Logit pixels
    that are partly padding are those of the unmoved frame."""
    sizes = [(37, 53), (40, 64)]
    images = [torch.full((3, h, w), 200, dtype=torch.uint8)
              for h, w in sizes]
    out = _das_images(images, (64, 96), op, magnitude)
    frames = out['inputs'].view(2, 3, 3, 64, 96)
    logits = torch.nn.functional.avg_pool2d(frames.flatten(0, 1), stride)
    fused = _fcn_head().fuse(logits, out['data_samples'])
    for n, (h, w) in enumerate(sizes):
        inside = fused[n, :, :h // stride, :w // stride]
        assert (inside - 200).abs().max() < 0.05, (n, inside.min())
        # the partly padded last row/column: the reference frame's value
        hh, ww = -(-h // stride), -(-w // stride)
        reference = logits.view(2, 3, 3, *logits.shape[-2:])[n, 1]
        assert torch.allclose(fused[n, :, :hh, :ww], reference[:, :hh, :ww],
                              atol=0.05)
    # and the frames do move: the plain mean is off along the borders
    mean = logits.view(2, 3, 3, *logits.shape[-2:]).mean(1)
    assert (mean[0, :, :37 // stride, :53 // stride] - 200).abs().max() > 20


def test_fuse_a_batch_of_differently_sized_images_at_stride_8():
    """Two smooth images of different sizes in one padded batch at stride
    8: each fuses as it does alone in its own padded batch, and close to
    its own pooled image, much closer than the plain mean."""
    pool = torch.nn.functional.avg_pool2d
    images = [_smooth_image(40, 56), _smooth_image(64, 96).flip(-1)]
    both = _das_images(images, (64, 96), 'rotate', 10.0)
    logits = pool(both['inputs'].view(6, 3, 64, 96), 8)
    fused = _fcn_head().fuse(logits, both['data_samples'])
    for n, img in enumerate(images):
        h, w = (s // 8 for s in img.shape[-2:])
        alone = _das_images([img], (64, 96), 'rotate', 10.0)
        single = _fcn_head().fuse(pool(alone['inputs'].view(3, 3, 64, 96), 8),
                                  alone['data_samples'])[0]
        assert torch.allclose(fused[n], single, atol=1e-4)
        known = pool(img[None].float(), 8)[0]
        err = (fused[n, :, :h, :w] - known).abs()
        mean = logits.view(2, 3, 3, 8, 12)[n].mean(0)[:, :h, :w]
        assert err.mean() < 0.5 * (mean - known).abs().mean()
        assert err.max() < 25, err.max()


def test_fusion_errors():
    frames = torch.randn(4, 3, 8, 8)
    with pytest.raises(KeyError, match='DASImageToVideo'):
        _fcn_head().fuse(frames, [dict(), dict()])
    with pytest.raises(ValueError, match='num_frames=3'):
        _fcn_head(num_frames=3).fuse(frames, [dict(), dict()])
    with pytest.raises(ValueError, match=r"fusion.*'mean'"):
        _fcn_head(fusion='median')
    with pytest.raises(ValueError, match='not both'):
        TemporalFusionHead(head=dict(type='FCNHead'), wrapped_type='FCNHead')
    with pytest.raises(ValueError, match=r'\(2, 3, 3\)'):
        _fcn_head().fuse(frames, [dict(das_matrices=torch.eye(3)[None])] * 2)


def _segmentor(num_frames=2, temporal_module='gsf', fusion='inverse_warp',
               segmentor='DASEncoderDecoder', **backbone):
    from mmseg.registry import MODELS
    return MODELS.build(
        ConfigDict(
            type=segmentor,
            backbone=dict(type='GSFResNetV1c', depth=18,
                          num_frames=num_frames,
                          temporal_module=temporal_module, norm_cfg=BN,
                          **D8, **backbone),
            decode_head=dict(type='TemporalFusionHead', fusion=fusion,
                             wrapped_type='DepthwiseSeparableASPPHead',
                             **ASPP),
            auxiliary_head=[
                dict(type='TemporalFusionHead', fusion=fusion,
                     head=dict(type='FCNHead', **FCN))
            ],
            train_cfg=dict(),
            test_cfg=dict(mode='whole')))


def _samples(n, mats=None, size=(32, 32)):
    from mmseg.structures import SegDataSample
    out = []
    for i in range(n):
        s = SegDataSample()
        meta = dict(img_shape=size, ori_shape=size, pad_shape=size)
        if mats is not None:
            meta['das_matrices'] = mats
        s.set_metainfo(meta)
        label = torch.randint(0, NUM_CLASSES, (1, ) + size)
        label[:, :2] = 255
        s.gt_sem_seg = PixelData(data=label)
        out.append(s)
    return out


def test_deeplabv3plus_loss_predict_slide_and_iou():
    from mmseg.evaluation import IoUMetric
    torch.manual_seed(0)
    # zero_init_residual zeroes bn2, which would hide the GSF gradients
    model = _segmentor(zero_init_residual=False)
    model.init_weights()
    mats = geometry.op_matrices('translate_x', 0.1, geometry.frame_offsets(2),
                                32, 32)
    inputs = torch.randn(2, 6, 32, 32)  # 2 images, 2 stacked frames each
    losses = model.loss(inputs, _samples(2, mats))
    assert set(losses) >= {'decode.loss_ce', 'aux_0.loss_ce'}
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.layer4[1].conv2.temporal.gate_conv.weight.grad.abs(
    ).sum() > 0

    model.eval()
    with torch.no_grad():
        preds = model.predict(inputs, _samples(2, mats))
    assert len(preds) == 2
    assert preds[0].seg_logits.data.shape == (NUM_CLASSES, 32, 32)
    assert preds[0].pred_sem_seg.data.shape == (1, 32, 32)

    # the fused logits are the inner head's logits of the frames, warped
    # back and averaged where valid
    with torch.no_grad():
        per_frame = model.decode_head.forward(model.extract_feat(inputs))
    back, valid = geometry.inverse_warp(per_frame, mats.repeat(2, 1, 1))
    valid = valid.float().view(2, 2, 1, *per_frame.shape[-2:])
    want = (back.view(2, 2, *per_frame.shape[1:]) * valid).sum(1) / \
        valid.sum(1)
    want = torch.nn.functional.interpolate(
        want, (32, 32), mode='bilinear', align_corners=False)
    assert torch.allclose(preds[0].seg_logits.data, want[0], atol=1e-5)
    assert (valid[:, 0] == 0).any()  # frame 0 does not cover the image

    # slide inference: a crop as large as the image gives the same numbers
    model.test_cfg = ConfigDict(mode='slide', crop_size=(32, 32),
                                stride=(16, 16))
    with torch.no_grad():
        slide = model.predict(inputs, _samples(2, mats))
    assert torch.allclose(slide[1].seg_logits.data, preds[1].seg_logits.data,
                          atol=1e-5)
    model.test_cfg = ConfigDict(mode='slide', crop_size=(24, 24),
                                stride=(16, 16))
    with torch.no_grad():
        slide = model.predict(inputs, _samples(2, mats))
    assert len(slide) == 2 and slide[1].pred_sem_seg.data.shape == (1, 32, 32)
    # crops at 0 and 8 per side: pixels [0:8, 0:8] are crop (0, 0)'s alone,
    # its frames' logits inverse-warped with the maps placed on the crop
    # (the image's maps are relative to the whole 32x32 input)
    crop = inputs[:, :, :24, :24]
    with torch.no_grad():
        per_crop = model.decode_head.forward(model.extract_feat(crop))
    on_crop = geometry.maps_in_view(mats, [(0, 0, 32, 32)] * 2,
                                    [(0, 0, 24, 24)] * 2)
    region = torch.ones(2, 1, 24, 24)
    want = []
    for as_crop in (on_crop, mats.expand(2, -1, -1, -1)):
        back, valid = geometry.inverse_warp(
            per_crop, as_crop.reshape(4, 3, 3),
            region=region.repeat_interleave(2, dim=0))
        valid = valid.float().view(2, 2, 1, *per_crop.shape[-2:])
        fused = (back.view(2, 2, *per_crop.shape[1:]) * valid).sum(1) / \
            valid.sum(1).clamp_min(1)
        mean = per_crop.view(2, 2, *per_crop.shape[1:]).mean(1)
        fused = torch.where(valid.sum(1) > 0, fused, mean)
        want.append(torch.nn.functional.interpolate(
            fused, (24, 24), mode='bilinear', align_corners=False))
    got = torch.stack([s.seg_logits.data for s in slide])[..., :8, :8]
    right = (got - want[0][..., :8, :8]).abs().max()
    wrong = (got - want[1][..., :8, :8]).abs().max()
    assert right < 1e-6
    # taking the crop for the whole image (the maps unplaced) differs
    assert wrong > 0.02 * got.abs().max()

    metric = IoUMetric()
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    metric.process({}, [p.to_dict() for p in preds])
    result = metric.compute_metrics(metric.results)
    # IoUMetric scores the fused prediction of each image against its label
    inter, union = torch.zeros(NUM_CLASSES), torch.zeros(NUM_CLASSES)
    for p in preds:
        pred = p.pred_sem_seg.data[0]
        assert torch.equal(pred, p.seg_logits.data.argmax(0))
        label = p.gt_sem_seg.data[0]
        keep = label != 255
        for k in range(NUM_CLASSES):
            a, b = (pred == k) & keep, (label == k) & keep
            inter[k] += (a & b).sum()
            union[k] += (a | b).sum()
    expected = 100 * (inter / union).nanmean().item()
    assert math.isclose(result['mIoU'], expected, abs_tol=0.01)


class _FramesAsFeatures(torch.nn.Module):
    """A pointwise "backbone": each frame, avg-pooled to stride 4, is its
    feature map, so a crop's logits are the whole input's logits there."""

    def __init__(self, num_frames):
        super().__init__()
        self.num_frames = num_frames

    def forward(self, inputs):
        from mmdas.video import unstack_frames
        frames = unstack_frames(inputs, self.num_frames)
        return (torch.nn.functional.avg_pool2d(frames, 4), )


def _pointwise_segmentor(segmentor='DASEncoderDecoder', num_frames=3):
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(
        ConfigDict(
            type=segmentor,
            backbone=dict(type='ResNetV1c', depth=18, num_stages=1,
                          out_indices=(0, ), strides=(1, ), dilations=(1, ),
                          norm_cfg=BN),
            decode_head=dict(type='TemporalFusionHead',
                             wrapped_type='FCNHead', in_channels=3,
                             channels=3, num_convs=0, concat_input=False,
                             in_index=0, num_classes=NUM_CLASSES,
                             norm_cfg=BN, align_corners=False),
            test_cfg=dict(mode='whole')))
    model.backbone = _FramesAsFeatures(num_frames)
    return model.eval()


def _policy_video(h, w, num_frames=3, degrees=8.0):
    from mmdas.models import DASSegDataPreProcessor
    from mmseg.structures import SegDataSample
    pre = DASSegDataPreProcessor(
        policy=dict(transforms=[dict(op='rotate', magnitude=degrees)],
                    num_frames=num_frames),
        mean=[128.0] * 3, std=[64.0] * 3)
    sample = SegDataSample()
    sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
    out = pre(dict(inputs=[_smooth_image(h, w)], data_samples=[sample]))
    return out['inputs'], out['data_samples']


def _predict(model, inputs, samples, **test_cfg):
    model.test_cfg = ConfigDict({'mode': 'whole', **test_cfg})
    with torch.no_grad():
        return model.predict(inputs, copy.deepcopy(samples))[0].seg_logits.data


def test_slide_inference_inverse_warps_like_whole_inference():
    """Issue 11.4b: each crop's frames are inverse-warped in the crop."""
    h, w = 40, 56
    inputs, samples = _policy_video(h, w)
    model = _pointwise_segmentor()
    whole = _predict(model, inputs, samples)
    # the fusion really aligns: the plain mean of the frames is far off
    model.decode_head.fusion = 'mean'
    mean = _predict(model, inputs, samples)
    model.decode_head.fusion = 'inverse_warp'
    assert (mean - whole).abs().max() > 0.3
    # one crop holds the whole image: the same numbers
    one = _predict(model, inputs, samples, mode='slide', crop_size=(48, 64),
                   stride=(32, 32))
    assert torch.allclose(one, whole, atol=1e-5)
    # six overlapping crops: the numbers stay as close to whole inference
    # as mmseg's slide inference is for a 2D net (identity frames), whose
    # crops' logits are resized within each crop
    slide = dict(mode='slide', crop_size=(24, 32), stride=(16, 12))
    err = (_predict(model, inputs, samples, **slide) - whole).abs()
    still = _policy_video(h, w, degrees=0.0)
    base = (_predict(model, *still, **slide) - _predict(model, *still)).abs()
    assert err.max() < 1.5 * base.max() and err.max() < 0.2
    assert err.mean() < 2 * base.mean() and err.mean() < 0.01
    assert (mean - whole).abs().mean() > 4 * err.mean()


def test_slide_inference_needs_the_crop_box():
    h, w = 40, 56
    inputs, samples = _policy_video(h, w)
    model = _pointwise_segmentor('EncoderDecoder')
    whole = _predict(model, inputs, samples)
    # a crop that is the whole input is fine with mmseg's EncoderDecoder
    one = _predict(model, inputs, samples, mode='slide', crop_size=(48, 64),
                   stride=(32, 32))
    assert torch.allclose(one, whole, atol=1e-5)
    with pytest.raises(ValueError, match=r"crop of shape \(24, 32\).*"
                       r"type='DASEncoderDecoder'.*fusion='mean'"):
        _predict(model, inputs, samples, mode='slide', crop_size=(24, 32),
                 stride=(16, 12))


def test_das_encoder_decoder_is_a_drop_in_for_2d_heads():
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    cfg = ConfigDict(
        type='EncoderDecoder',
        backbone=dict(type='ResNetV1c', depth=18, norm_cfg=BN, **D8),
        decode_head=dict(type='FCNHead', **dict(FCN, in_index=3,
                                                in_channels=512)),
        test_cfg=dict(mode='slide', crop_size=(24, 24), stride=(16, 16)))
    stock = MODELS.build(cfg).eval()
    das = MODELS.build(dict(cfg, type='DASEncoderDecoder')).eval()
    das.load_state_dict(stock.state_dict())
    inputs = torch.randn(2, 3, 40, 48)
    with torch.no_grad():
        a = stock.predict(inputs, _samples(2, size=(40, 48)))
        b = das.predict(inputs, _samples(2, size=(40, 48)))
    for x, y in zip(a, b):
        assert torch.equal(x.seg_logits.data, y.seg_logits.data)


def test_merge_friendly_config_keeps_base_kwargs():
    from mmseg.registry import MODELS
    cfg = Config(dict(decode_head=dict(type='DepthwiseSeparableASPPHead',
                                       **ASPP)))
    cfg.merge_from_dict(dict(decode_head=dict(
        type='TemporalFusionHead', wrapped_type='DepthwiseSeparableASPPHead',
        num_frames=2)))
    head = MODELS.build(cfg.decode_head)
    assert type(head).__name__ == 'TemporalFusionHead'
    assert type(head.head).__name__ == 'DepthwiseSeparableASPPHead'
    assert head.num_classes == NUM_CLASSES and head.ignore_index == 255
    assert head.align_corners is False and head.out_channels == NUM_CLASSES
    assert head.c1_bottleneck is not None  # other inner attributes too


def _stock_state(video_state):
    return {k.replace('decode_head.head.', 'decode_head.').replace(
        'auxiliary_head.0.head.', 'auxiliary_head.0.'): v
        for k, v in video_state.items()}


def test_one_frame_no_temporal_module_is_stock_deeplabv3plus():
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    video = _segmentor(num_frames=1, temporal_module=None)
    video.init_weights()
    stock = MODELS.build(
        ConfigDict(
            type='EncoderDecoder',
            backbone=dict(type='ResNetV1c', depth=18, norm_cfg=BN, **D8),
            decode_head=dict(type='DepthwiseSeparableASPPHead', **ASPP),
            auxiliary_head=[dict(type='FCNHead', **FCN)],
            train_cfg=dict(), test_cfg=dict(mode='whole')))
    stock.load_state_dict(_stock_state(video.state_dict()))
    inputs = torch.randn(2, 3, 32, 32)
    samples = _samples(2)  # no das_matrices: nothing to fuse with T=1
    loss_v = video.loss(inputs, copy.deepcopy(samples))
    loss_s = stock.loss(inputs, copy.deepcopy(samples))
    for key in loss_s:
        assert torch.equal(loss_v[key], loss_s[key]), key
    video.eval()
    stock.eval()
    with torch.no_grad():
        pv = video.predict(inputs, copy.deepcopy(samples))
        ps = stock.predict(inputs, copy.deepcopy(samples))
    for a, b in zip(pv, ps):
        assert torch.equal(a.seg_logits.data, b.seg_logits.data)


def _classifier(backbone_type='GSFResNet_CIFAR',
                head_type='TemporalAvgClsHead', head_frames=None, **backbone):
    from mmpretrain.registry import MODELS
    head = dict(type='LinearClsHead', num_classes=4, in_channels=512,
                loss=dict(type='CrossEntropyLoss'), topk=(1, ))
    if head_type == 'TemporalAvgClsHead':
        head = dict(type=head_type, wrapped_type=head.pop('type'),
                    num_frames=head_frames, **head)
    return MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type=backbone_type, depth=18, **backbone),
             neck=dict(type='GlobalAveragePooling'), head=head))


def _cls_samples(n):
    from mmpretrain.structures import DataSample
    return [DataSample().set_gt_label(i % 4) for i in range(n)]


def test_mmpretrain_classifier_averages_frames_and_accuracy():
    from mmpretrain.evaluation import Accuracy
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = _classifier(num_frames=3)
    model.init_weights()
    inputs = torch.randn(2, 9, 16, 16)
    losses = model.loss(inputs, _cls_samples(2))
    assert torch.isfinite(losses['loss'])
    model.eval()
    with torch.no_grad():
        preds = model.predict(inputs, _cls_samples(2))
        feats = model.extract_feat(inputs)
        per_frame = model.head.head(feats)
    assert len(preds) == 2 and per_frame.shape == (6, 4)
    expected = per_frame.view(2, 3, 4).mean(1).softmax(1)
    assert torch.allclose(torch.stack([p.pred_score for p in preds]),
                          expected, atol=1e-6)
    metric = Accuracy(topk=(1, ))
    metric.process({}, [p.to_dict() for p in preds])
    hits = [int(p.pred_label) == int(p.gt_label) for p in preds]
    top1 = metric.compute_metrics(metric.results)['top1']
    assert math.isclose(top1, 100 * sum(hits) / 2)
    # mode='tensor' and predict without data samples need num_frames
    with pytest.raises(ValueError, match='num_frames'):
        model(inputs, mode='tensor')
    model.head.num_frames = 3
    assert model(inputs, mode='tensor').shape == (2, 4)
    assert len(model.predict(inputs)) == 2


def test_one_frame_no_temporal_module_is_stock_classifier():
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    video = _classifier(num_frames=1, temporal_module=None, head_frames=1)
    video.init_weights()
    stock = _classifier('ResNet_CIFAR', 'LinearClsHead')
    stock.load_state_dict({k.replace('head.head.', 'head.'): v
                           for k, v in video.state_dict().items()})
    inputs = torch.randn(2, 3, 16, 16)
    assert torch.equal(
        video.loss(inputs, _cls_samples(2))['loss'],
        stock.loss(inputs, _cls_samples(2))['loss'])
    video.eval()
    stock.eval()
    with torch.no_grad():
        a, b = video.predict(inputs), stock.predict(inputs)
    for x, y in zip(a, b):
        assert torch.equal(x.pred_score, y.pred_score)
    assert math.isclose(float(a[0].pred_score.sum()), 1.0, rel_tol=1e-5)


def test_trained_das_segmentor_beats_all_background():
    """A few steps on DAS videos of block images (label = bright blocks)
    lift the fused prediction's mIoU well above predicting background."""
    from mmseg.evaluation import IoUMetric
    torch.manual_seed(0)
    model = _segmentor(zero_init_residual=False)
    model.init_weights()
    n, t = 4, 2
    mats = geometry.op_matrices('translate_x', 0.1, geometry.frame_offsets(t),
                                32, 32)
    blocks = (torch.rand(n, 1, 4, 4) > 0.5).float()
    label = blocks.repeat_interleave(8, 2).repeat_interleave(8, 3)
    images = (label * 2 - 1).expand(-1, 3, -1, -1)
    video = geometry.warp(
        images[:, None].expand(-1, t, -1, -1, -1).reshape(n * t, 3, 32, 32),
        mats.repeat(n, 1, 1)).reshape(n, t * 3, 32, 32)

    def samples():
        out = _samples(n, mats)
        for s, lab in zip(out, label.long()):
            s.gt_sem_seg = PixelData(data=lab)
        return out

    def miou(preds):
        metric = IoUMetric()
        metric.dataset_meta = dict(classes=('a', 'b', 'c'))
        metric.process({}, [p.to_dict() for p in preds])
        return metric.compute_metrics(metric.results)['mIoU']

    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(30):
        losses = model.loss(video, samples())
        optim.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optim.step()
    model.eval()
    with torch.no_grad():
        preds = model.predict(video, samples())
    background = []
    for p in samples():
        p.set_data(dict(pred_sem_seg=PixelData(
            data=torch.zeros(1, 32, 32, dtype=torch.long))))
        background.append(p)
    assert miou(background) < 40
    assert miou(preds) > miou(background) + 30  # 70 vs 26 here


def test_heads_check_the_preprocessors_das_num_frames():
    """Features of 2 frames per image where the DAS preprocessor made 4:
    refused by both heads, not fused as if T were 2."""
    from mmpretrain.structures import DataSample
    head = _fcn_head()
    logits = head.forward([torch.randn(4, 4, 8, 8)])  # 2 images x 2 frames
    metas = [dict(das_num_frames=4, das_matrices=torch.eye(3).expand(4, 3,
                                                                     3))] * 2
    with pytest.raises(ValueError, match=r'made \[4\] frames.*hold 2'):
        head.fuse(logits, metas)
    init_default_scope('mmpretrain')
    cls = TemporalAvgClsHead(wrapped_type='LinearClsHead', num_classes=4,
                             in_channels=8)
    samples = [DataSample(metainfo=dict(das_num_frames=4)) for _ in range(2)]
    with pytest.raises(ValueError, match=r'made \[4\] frames.*hold 2'):
        cls.predict((torch.randn(4, 8), ), samples)
    for s in samples:
        s.set_metainfo(dict(das_num_frames=2))
    assert len(cls.predict((torch.randn(4, 8), ), samples)) == 2
