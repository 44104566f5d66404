"""Starting from 2D: a stock mmseg/mmpretrain checkpoint loads into the DAS
model (every 2D parameter), and the DAS model then predicts, frame by frame,
what the 2D model predicts (zero-gate GSF, train and eval mode)."""
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint

import mmdas  # noqa: F401
from mmdas.models.backbones import video_resnet

BN = dict(type='BN', requires_grad=True)
D8 = dict(dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
          contract_dilation=True)
T = 3


def _deeplabv3plus(das: bool):
    """DeepLabV3+-R18-D8 (small heads), stock or DAS."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    aspp = dict(type='DepthwiseSeparableASPPHead', in_channels=512,
                in_index=3, channels=16, dilations=(1, 2), c1_in_channels=64,
                c1_channels=8, dropout_ratio=0., num_classes=3, norm_cfg=BN,
                align_corners=False)
    fcn = dict(type='FCNHead', in_channels=256, in_index=2, channels=8,
               num_convs=1, concat_input=False, dropout_ratio=0.,
               num_classes=3, norm_cfg=BN, align_corners=False)
    backbone = dict(type='ResNetV1c', depth=18, norm_cfg=BN, **D8)
    if das:
        backbone.update(type='GSFResNetV1c', num_frames=T)
        aspp = dict(type='TemporalFusionHead', head=aspp, num_frames=T)
        fcn = dict(type='TemporalFusionHead', head=fcn, num_frames=T)
    return MODELS.build(
        ConfigDict(type='EncoderDecoder', backbone=backbone,
                   decode_head=aspp, auxiliary_head=fcn, train_cfg=dict(),
                   test_cfg=dict(mode='whole')))


def _classifier(das: bool):
    """mmpretrain ResNet-18 (CIFAR stem) classifier, stock or DAS."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    backbone = dict(type='ResNet_CIFAR', depth=18)
    head = dict(type='LinearClsHead', num_classes=4, in_channels=512)
    if das:
        backbone.update(type='GSFResNet_CIFAR', num_frames=T)
        head = dict(type='TemporalAvgClsHead', head=head, num_frames=T)
    return MODELS.build(
        dict(type='ImageClassifier', backbone=backbone,
             neck=dict(type='GlobalAveragePooling'), head=head))


def _trained_like(model, seed=0):
    """Random weights and BN statistics, as a trained model has."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.dtype.is_floating_point:
                continue
            if 'running_var' in name:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif 'running_mean' in name:
                t.copy_(torch.randn(t.shape, generator=g) * 0.3)
            else:
                t.copy_(torch.randn(t.shape, generator=g) *
                        (0.2 if t.dim() > 1 else 0.5))
    return model


BUILDERS = dict(seg=_deeplabv3plus, cls=_classifier)


def _checkpoint_2d(kind, tmp_path):
    torch.manual_seed(0)
    stock = _trained_like(BUILDERS[kind](das=False))
    path = str(tmp_path / f'{kind}_2d.pth')
    torch.save(dict(state_dict=stock.state_dict(), meta=dict()), path)
    return stock, path


@pytest.mark.parametrize('kind', ['seg', 'cls'])
def test_stock_2d_checkpoint_loads_every_parameter(kind, tmp_path,
                                                   monkeypatch):
    stock, path = _checkpoint_2d(kind, tmp_path)
    logged = []
    monkeypatch.setattr(video_resnet, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    das = BUILDERS[kind](das=True)
    das.init_weights()
    load_checkpoint(das, path)  # what the Runner's load_from does

    own = das.state_dict()
    for key, value in stock.state_dict().items():
        assert key in own, key
        assert torch.equal(own[key], value), key
    new = sorted(set(own) - set(stock.state_dict()))
    assert new and all('.temporal.' in k for k in new)
    # one log line lists the new (temporal) modules
    lines = [m for m in logged if 'new' in m]
    assert len(lines) == 1 and 'layer4.1.conv2.temporal' in lines[0]
    assert '8 gsf modules' in lines[0]

    # our checkpoints keep the 2D names: the 2D model loads a DAS one, ...
    assert sorted(
        stock.load_state_dict(own, strict=False).unexpected_keys) == new
    # ... and a checkpoint written with the nested names still loads
    if kind == 'seg':
        nested = {k.replace('decode_head.', 'decode_head.head.').replace(
            'auxiliary_head.', 'auxiliary_head.head.'): v
            for k, v in own.items()}
    else:
        nested = {k.replace('head.', 'head.head.', 1) if k.startswith(
            'head.') else k: v for k, v in own.items()}
    assert nested != own
    fresh = BUILDERS[kind](das=True)
    fresh.load_state_dict(nested)  # strict
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, own[key]), key


def test_backbone_only_through_pretrained(tmp_path):
    """mmseg's ``pretrained=`` (a whole 2D model checkpoint here) fills the
    backbone of a DAS segmentor."""
    from mmseg.registry import MODELS
    stock, path = _checkpoint_2d('seg', tmp_path)
    init_default_scope('mmseg')
    das = MODELS.build(
        ConfigDict(type='EncoderDecoder', pretrained=path,
                   backbone=dict(type='GSFResNetV1c', depth=18, norm_cfg=BN,
                                 num_frames=T, **D8),
                   decode_head=dict(
                       type='TemporalFusionHead', wrapped_type='FCNHead',
                       in_channels=512, channels=8, num_convs=1,
                       num_classes=3),
                   train_cfg=dict(), test_cfg=dict(mode='whole')))
    das.init_weights()
    own = das.backbone.state_dict()
    for key, value in stock.state_dict().items():
        if key.startswith('backbone.'):
            assert torch.equal(own[key[len('backbone.'):]], value), key


def _per_frame_2d(kind, model, frames):
    """Per-frame logits of the 2D model on a batch of frames."""
    feats = model.extract_feat(frames)
    if kind == 'seg':
        return model.decode_head.forward(feats)
    return model.head(feats)


def _per_frame_das(kind, model, video):
    feats = model.extract_feat(video)
    if kind == 'seg':
        return model.decode_head.forward(feats)  # unfused
    return model.head.head(feats)


@pytest.mark.parametrize('kind', ['seg', 'cls'])
@pytest.mark.parametrize('train', [True, False])
def test_das_model_from_2d_weights_predicts_the_2d_model(kind, train,
                                                         tmp_path):
    """Zero-gate GSF with the default settings: before its first step the
    DAS model computes every frame exactly as the 2D model it loaded."""
    stock, path = _checkpoint_2d(kind, tmp_path)
    das = BUILDERS[kind](das=True)
    das.init_weights()
    load_checkpoint(das, path)
    stock.train(train)
    das.train(train)
    torch.manual_seed(1)
    video = torch.randn(2, T * 3, 32, 32)  # 2 images x T different frames
    frames = video.view(2 * T, 3, 32, 32)
    with torch.no_grad():
        expected = _per_frame_2d(kind, stock, frames)
        got = _per_frame_das(kind, das, video)
    assert got.shape == expected.shape
    scale = expected.abs().max()
    assert scale > 1e-3
    assert torch.allclose(got, expected, atol=1e-5 * scale, rtol=0), (
        (got - expected).abs().max() / scale)
