"""GSF/TSM ResNets: shapes, errors, frame independence, 2D checkpoints."""
import pytest
import torch
from mmengine.registry import init_default_scope

import mmdas  # noqa: F401
from mmdas.models.backbones import GSFResNet, GSFResNet_CIFAR, GSFResNetV1c
from mmdas.registry import MODELS

D8 = dict(dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
          contract_dilation=True)


def _randomise(model, seed=0):
    """Random weights and BN statistics, so that comparisons can fail."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + (
                    0.5 if 'running_var' in name else -0.1))
    return model


@pytest.mark.parametrize('module', ['gsf', 'tsm'])
def test_v1c_d8_shapes_and_with_cp(module):
    torch.manual_seed(0)
    kw = dict(depth=18, num_frames=2, temporal_module=module, **D8)
    net = GSFResNetV1c(**kw)
    net.init_weights()
    x = torch.randn(2, 6, 32, 32)  # 2 images x 2 frames, stacked
    outs = net(x)
    assert [tuple(o.shape) for o in outs] == [(4, 64, 8, 8), (4, 128, 4, 4),
                                             (4, 256, 4, 4), (4, 512, 4, 4)]
    # with_cp gives the same numbers and still back-propagates
    cp = GSFResNetV1c(with_cp=True, **kw)
    cp.load_state_dict(net.state_dict())
    net.eval(), cp.eval()
    xg = x.clone().requires_grad_()
    out_cp = cp(xg)
    assert torch.allclose(out_cp[-1], net(x)[-1], atol=1e-5)
    out_cp[-1].sum().backward()
    assert xg.grad.abs().sum() > 0


@pytest.mark.parametrize('cls, preprocessor', [
    (GSFResNetV1c, 'DASSegDataPreProcessor'),
    (GSFResNet, 'DASClsDataPreprocessor'),
    (GSFResNet_CIFAR, 'DASClsDataPreprocessor'),
])
def test_plain_images_are_refused_not_read_as_frames(cls, preprocessor):
    """4 plain images with num_frames=2 would pass an N % T check and be
    mixed by GSF as 2 videos: refused, naming the preprocessor to use."""
    net = cls(depth=18, num_frames=2)
    net.eval()
    with pytest.raises(ValueError, match=rf'num_frames=2.*\[N, 2\*3, H, '
                       rf"W\].*{preprocessor}.*model.data_preprocessor"):
        net(torch.randn(4, 3, 32, 32))
    with pytest.raises(ValueError, match='channels'):
        net(torch.randn(2, 9, 32, 32))
    # the stacked videos are read, frame t of image n at n*T + t
    assert net(torch.randn(2, 6, 32, 32))[-1].shape[0] == 4
    # one frame: a 2D ResNet on plain images
    assert cls(depth=18, num_frames=1)(torch.randn(3, 3, 32, 32))[-1].shape[
        0] == 3


@pytest.mark.parametrize('kwargs, field', [
    (dict(temporal_module='gsm'), 'temporal_module'),
    (dict(gsf_ratio=2), 'gsf_ratio'),
    (dict(num_frames=0), 'num_frames'),
    (dict(temporal_module='tsm', shift_div=1), 'shift_div'),
    (dict(gsf_init='zeros'), 'gsf_init'),
])
def test_bad_config_fails_at_build_time(kwargs, field):
    with pytest.raises(ValueError, match=field):
        GSFResNetV1c(depth=18, **kwargs)


def test_mmpretrain_backbones():
    net = GSFResNet(depth=18, num_frames=2)
    assert net(torch.randn(1, 6, 32, 32))[0].shape == (2, 512, 1, 1)
    net = GSFResNet(depth=50, num_frames=2, out_indices=(0, 3))
    outs = net(torch.randn(1, 6, 32, 32))
    assert [o.shape[:2] for o in outs] == [(2, 256), (2, 2048)]
    # GSF after conv3 before bn3: a quarter of the 256 block outputs gated
    assert net.layer1[0].conv3.temporal.gsf_channels == 64
    net = GSFResNet_CIFAR(depth=18, num_frames=3, temporal_module='tsm')
    assert net(torch.randn(2, 9, 16, 16))[0].shape == (6, 512, 2, 2)
    assert net.layer1[0].conv1.position == 'before'


def test_no_frame_mixing_at_init_but_after_training_the_gate():
    torch.manual_seed(0)
    net = _randomise(GSFResNetV1c(depth=18, num_frames=2, **D8))
    for m in net.temporal_modules():  # back to the documented init
        m.reset_parameters()
        m.bn.running_var.fill_(1.)
    net.eval()
    x = torch.randn(1, 6, 32, 32)
    x2 = x.clone()
    x2[:, 3:] += 1  # change frame 1 only
    out, out2 = net(x)[-1], net(x2)[-1]
    assert torch.equal(out[0], out2[0])  # frame 0 untouched: no mixing
    for m in net.temporal_modules():
        torch.nn.init.normal_(m.gate_conv.weight, std=0.5)
    assert not torch.allclose(net(x)[-1][0], net(x2)[-1][0])


def test_temporal_none_one_frame_is_stock_resnet():
    from mmseg.models.backbones import ResNetV1c
    stock = _randomise(ResNetV1c(depth=18, **D8))
    video = GSFResNetV1c(depth=18, num_frames=1, temporal_module=None, **D8)
    video.load_state_dict(stock.state_dict())
    stock.eval()
    video.eval()
    x = torch.randn(2, 3, 32, 32)
    for a, b in zip(stock(x), video(x)):
        assert torch.equal(a, b)


def _check_loaded(net, state, skip=()):
    own = net.state_dict()
    for key, value in state.items():
        if key not in skip:
            assert torch.equal(own[key], value), key


def test_load_mmseg_checkpoint_via_init_cfg(tmp_path):
    from mmseg.models.backbones import ResNetV1c
    stock = _randomise(ResNetV1c(depth=18, **D8))
    path = str(tmp_path / 'r18_v1c.pth')
    torch.save(stock.state_dict(), path)
    net = GSFResNetV1c(
        depth=18, num_frames=2, init_cfg=dict(type='Pretrained',
                                              checkpoint=path), **D8)
    net.init_weights()
    _check_loaded(net, stock.state_dict())
    report = net.pretrained_report
    assert report['unexpected'] == [] and report['mismatched'] == []
    assert len(report['loaded']) == len(stock.state_dict())
    assert report['missing'] and all('.temporal.' in k
                                     for k in report['missing'])
    # the GSF parameters kept the documented zero-gate init
    gsf = net.layer2[1].conv2.temporal
    assert gsf.gate_conv.weight.abs().sum() == 0
    assert gsf.fuse_conv.weight.abs().sum() == 0


def test_load_mmpretrain_whole_model_and_torchvision_names(tmp_path):
    from mmpretrain.models.backbones import ResNet
    stock = _randomise(ResNet(depth=18))
    whole = {f'backbone.{k}': v for k, v in stock.state_dict().items()}
    whole['head.fc.weight'] = torch.zeros(10, 512)
    path = str(tmp_path / 'cls.pth')
    torch.save(dict(state_dict=whole, meta=dict()), path)
    net = GSFResNet(depth=18, num_frames=2, temporal_module='tsm',
                    init_cfg=dict(type='Pretrained', checkpoint=path,
                                  prefix='backbone.'))
    net.init_weights()
    _check_loaded(net, stock.state_dict())
    assert net.pretrained_report['unexpected'] == ['head.fc.weight']
    assert net.pretrained_report['missing'] == []  # TSM has no parameters

    # torchvision naming (conv1/bn1/layerX.Y.convN/bnN/downsample.0|1/fc)
    tv = dict(stock.state_dict())
    tv['fc.weight'], tv['fc.bias'] = torch.zeros(1000, 512), torch.zeros(1000)
    net = GSFResNet(depth=18, num_frames=2)
    report = net.load_pretrained_2d(tv)
    _check_loaded(net, stock.state_dict())
    assert report['unexpected'] == ['fc.bias', 'fc.weight']


def test_load_deep_base_and_report_torchvision_stem_into_v1c():
    from mmseg.models.backbones import ResNetV1c
    stock = _randomise(ResNetV1c(depth=18))
    back = {'stem.0.': 'conv1.0.', 'stem.1.': 'conv1.1.', 'stem.3.':
            'conv1.3.', 'stem.4.': 'conv1.4.', 'stem.6.': 'conv1.6.',
            'stem.7.': 'bn1.'}
    encoding = {}
    for key, value in stock.state_dict().items():
        for new, old in back.items():
            if key.startswith(new):
                key = old + key[len(new):]
        encoding[key] = value
    net = GSFResNetV1c(depth=18, num_frames=2)
    report = net.load_pretrained_2d(encoding)
    _check_loaded(net, stock.state_dict())
    assert report['renamed']['bn1.running_var'] == 'stem.7.running_var'
    assert report['unexpected'] == []

    # a torchvision 7x7 stem cannot fill a deep stem: reported by name
    tv = {k: v for k, v in stock.state_dict().items()
          if not k.startswith('stem.')}
    tv['conv1.weight'] = torch.zeros(64, 3, 7, 7)
    tv['bn1.weight'] = torch.zeros(64)
    report = GSFResNetV1c(depth=18, num_frames=2).load_pretrained_2d(tv)
    assert report['unexpected'] == ['bn1.weight', 'conv1.weight']
    assert 'stem.0.weight' in report['missing']


@pytest.mark.parametrize('scope', ['mmseg', 'mmpretrain'])
def test_registry_names_resolve_to_mmdas(scope):
    init_default_scope(scope)
    registry = MODELS
    if scope == 'mmseg':
        from mmseg.registry import MODELS as registry
    else:
        from mmpretrain.registry import MODELS as registry
    from mmdas.models.decode_heads import TemporalFusionHead
    from mmdas.models.heads import TemporalAvgClsHead
    for cls in (GSFResNetV1c, GSFResNet, GSFResNet_CIFAR, TemporalFusionHead,
                TemporalAvgClsHead):
        assert registry.get(cls.__name__) is cls


@pytest.mark.parametrize('cls', [GSFResNetV1c, GSFResNet])
def test_frozen_stages_and_norm_eval_leave_gsf_trainable(cls):
    """frozen_stages/norm_eval freeze the 2D layers they name; the new GSF
    modules in them stay trainable (a frozen zero-gate GSF would stay the
    identity) unless freeze_temporal=True."""
    net = cls(depth=18, num_frames=2, frozen_stages=2, norm_eval=True)
    net.train()
    gsf1 = net.layer1[0].conv2.temporal
    assert not net.layer1[0].conv2.weight.requires_grad  # 2D: frozen
    assert not net.layer1[0].bn1.training and not net.layer3[0].bn1.training
    assert net.layer3[0].conv2.weight.requires_grad
    for m in net.temporal_modules():
        assert m.training
        assert all(p.requires_grad for p in m.parameters())
    assert any(True for _ in gsf1.parameters())
    # the gate of a stage-1 GSF gets a gradient and an SGD step moves it
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad],
                          lr=0.1)
    net(torch.randn(2, 6, 32, 32))[-1].square().mean().backward()
    before = [p.detach().clone() for p in gsf1.parameters()]
    opt.step()
    assert any(not torch.equal(a, b)
               for a, b in zip(before, gsf1.parameters()))

    frozen = cls(depth=18, num_frames=2, frozen_stages=2, norm_eval=True,
                 freeze_temporal=True)
    frozen.train()
    stage1 = frozen.layer1[0].conv2.temporal
    assert not stage1.training
    assert not any(p.requires_grad for p in stage1.parameters())
    stage3 = frozen.layer3[0].conv2.temporal
    assert all(p.requires_grad for p in stage3.parameters())
    with pytest.raises(TypeError, match='freeze_temporal'):
        cls(depth=18, num_frames=2, freeze_temporal='yes')
