"""Temporal fusion heads: inverse-warp alignment, mmseg/mmpretrain models,
and the num_frames=1 equivalence with the stock 2D models."""
import copy
import math

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
               **backbone):
    from mmseg.registry import MODELS
    return MODELS.build(
        ConfigDict(
            type='EncoderDecoder',
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

    model.test_cfg = ConfigDict(mode='slide', crop_size=(24, 24),
                                stride=(16, 16))
    with pytest.warns(UserWarning, match='slide'), torch.no_grad():
        slide = model.predict(inputs, _samples(2, mats))
    assert len(slide) == 2 and slide[1].pred_sem_seg.data.shape == (1, 32, 32)

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
