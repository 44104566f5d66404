"""The memory switches with the video backbones: ``with_cp`` (the same loss
and gradients, less kept for backward), bf16 autocast, ``torch.compile``."""
import os.path as osp
import re
import sys

import pytest
import torch

import mmdas  # noqa: F401
from mmdas.models.backbones import GSFResNetV1c
from mmdas.models.temporal import (GateShiftFuse, TemporalConv2d,
                                   TemporalShift)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
D8 = dict(dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
          contract_dilation=True)


def _net(module, seed=0, **kwargs):
    torch.manual_seed(seed)
    net = GSFResNetV1c(depth=18, num_frames=2, temporal_module=module,
                       gsf_init='official', **D8, **kwargs)
    net.train()  # (mmseg's ResNet.train returns None)
    return net


def _saved_bytes(fn):
    sys.path.insert(0, osp.join(REPO, 'bench'))
    from bench_kept_memory import kept_for_backward
    return kept_for_backward(fn)


def _loss(outs):
    g = torch.Generator().manual_seed(3)
    return sum((o * torch.randn(o.shape, generator=g)).square().mean()
               for o in outs)


@pytest.mark.parametrize('module', ['gsf', 'tsm'])
def test_with_cp_gives_the_same_loss_and_gradients_and_keeps_less(module):
    net = _net(module)
    cp = _net(module, with_cp=True)
    cp.load_state_dict(net.state_dict())
    x = torch.randn(2, 6, 48, 48)  # 2 images x 2 frames
    results = []
    for model in (net, cp):
        xg = x.clone().requires_grad_()
        outs, kept = _saved_bytes(lambda: model(xg))
        loss = _loss(outs)
        loss.backward()
        grads = {k: p.grad for k, p in model.named_parameters()}
        results.append((loss.item(), xg.grad, grads, kept))
    (loss, gx, grads, kept), (loss_cp, gx_cp, grads_cp, kept_cp) = results
    assert loss_cp == pytest.approx(loss, rel=1e-6)
    assert torch.allclose(gx_cp, gx, rtol=1e-4, atol=1e-6)
    temporal = [k for k in grads if '.temporal.' in k]
    assert temporal or module == 'tsm'
    for name, grad in grads.items():
        assert torch.allclose(grads_cp[name], grad, rtol=1e-3,
                              atol=1e-6), name
    for name in temporal:
        assert grads[name].abs().sum() > 0, name
    # only the blocks' inputs are kept: a fraction of what the plain run
    # keeps
    assert kept_cp < 0.4 * kept, (kept_cp, kept)


def test_fused_gsf_keeps_only_its_input_copy():
    """The fused GSF keeps one copy of the gated quarter of its input (BN and
    the fusion share it) and small tensors; with a plain BN the gate
    branch's normalised, rectified copy (another quarter) is recomputed in
    the backward pass instead of kept. Nothing the size of the whole block
    output is kept besides the output itself (which the next BN keeps in a
    2D block too)."""
    conv = torch.nn.Conv2d(64, 64, 1)
    x = torch.randn(8, 64, 12, 12)
    ratios = {}
    for norm in ('BN', 'GN'):
        gsf = GateShiftFuse(64, 4, norm_cfg=dict(type=norm, num_groups=4)
                            if norm == 'GN' else None)
        out, kept = _saved_bytes(lambda: gsf(conv(x)))
        ratios[norm] = kept / (out.numel() * out.element_size())
    # conv input (x, the block input in a ResNet) + gated copy (1/4) + small
    assert ratios['BN'] <= 1 + 0.25 + 0.15, ratios
    # any other norm runs on plain autograd: its ReLU output is kept too
    assert ratios['GN'] - ratios['BN'] == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize('module', ['gsf', 'tsm'])
def test_bf16_autocast_keeps_the_gating_finite_and_close(module):
    net = _net(module)
    x = torch.randn(2, 6, 32, 32)
    ref = net(x)[-1]
    gates = []
    for m in net.modules():  # the convs that run GSF or TSM
        if isinstance(m, TemporalConv2d):
            m.register_forward_hook(lambda mod, args, out: gates.append(out))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = net(x)
    assert outs[-1].dtype == torch.bfloat16
    assert gates and all(torch.isfinite(g).all() for g in gates)
    assert all(g.dtype == torch.bfloat16 for g in gates)
    rel = (outs[-1].float() - ref).norm() / ref.norm()
    assert rel < 0.05, rel
    _loss([o.float() for o in outs]).backward()
    for name, p in net.named_parameters():
        assert torch.isfinite(p.grad).all(), name
    if module == 'gsf':
        assert net.layer1[0].conv2.temporal.gate_conv.weight.grad.abs().sum() \
            > 0


def _compiled_matches_eager(model, x):
    x = x.clone().requires_grad_()
    ref = model(x)
    ref = ref[-1] if isinstance(ref, tuple) else ref
    ref.square().mean().backward()
    ref_grad = x.grad.clone()
    x.grad = None
    # aot_eager: dynamo's graph capture and AOTAutograd of the fused
    # autograd functions, without inductor's C++ build (minutes on a CPU)
    out = torch.compile(model, backend='aot_eager')(x)
    out = out[-1] if isinstance(out, tuple) else out
    out.square().mean().backward()
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(x.grad, ref_grad, atol=1e-5)


def test_torch_compile_of_gsf_and_tsm_matches_eager():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(16, 16, 3, padding=1),
        GateShiftFuse(16, 2, init='official'), TemporalShift(2, 4))
    _compiled_matches_eager(model, torch.randn(4, 16, 6, 6))


@pytest.mark.slow  # about 2 minutes of tracing on a CPU
def test_torch_compile_of_a_video_backbone_matches_eager():
    _compiled_matches_eager(_net('gsf'), torch.randn(2, 6, 32, 32))


@pytest.mark.slow  # dynamo traces train_step: minutes on a CPU
def test_cfg_compile_trains_a_das_model(tiny_seg_root, tmp_path):
    """``cfg.compile`` (mmengine compiles ``model.train_step``) on a DAS
    segmentor: it trains, through tools/train.py. aot_eager: the graph
    capture and AOTAutograd, without inductor's C++ build."""
    import math

    from conftest import run_tool, seg_options, train_iters
    log = run_tool([
        sys.executable, 'tools/train.py',
        'configs/das_deeplabv3plus_r18_embedded.py', '--work-dir',
        str(tmp_path), '--cfg-options', *seg_options(tiny_seg_root, 2),
        'compile.backend=aot_eager'
    ], timeout=1500).stdout
    assert 'Model has been "compiled"' in log
    assert train_iters(log)[-1] == (2, 2)
    losses = [float(v) for v in re.findall(r'Iter\(train\).*? loss: (\S+)',
                                           log)]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert 'DAS training: 2 images x 4 frames = 8 frames per GPU step' in log


def test_gsf_statistics_do_not_overflow_in_float16():
    """The spatial means of g*x over a large map stay finite in float16
    (a plain float16 sum over 128x256 positions of values near 4 would
    reach 1.3e5, beyond float16's 65504)."""
    gsf = GateShiftFuse(8, 2)
    with torch.no_grad():
        gsf.gate_conv.bias.fill_(3.)  # tanh -> 0.995: gate almost 1
    x = torch.full((4, 8, 128, 256), 4.)
    ref = gsf.eval()(x)
    out = gsf.half()(x.half())
    assert torch.isfinite(out).all()
    assert torch.allclose(out.float(), ref, rtol=1e-2, atol=1e-2)
