"""TSM and GSF: exact shifts, the official GSF algorithm, init, gradients."""
import pytest
import torch
import torch.nn.functional as F

import mmdas  # noqa: F401
from mmdas.models.temporal import GateShiftFuse, TemporalShift
from mmdas.video import stack_frames, unstack_frames


def test_stack_unstack_frames_are_frame_major():
    video = torch.arange(2 * 3 * 2 * 1 * 1.).view(2, 3, 2, 1, 1)  # N,T,C
    stacked = stack_frames(video)
    assert stacked.shape == (2, 6, 1, 1)
    # frame t of image n is channels t*C:(t+1)*C
    assert torch.equal(stacked[1, 4:6], video[1, 2])
    frames = unstack_frames(stacked, 3)
    assert frames.shape == (6, 2, 1, 1)
    assert torch.equal(frames[1 * 3 + 2], video[1, 2])
    with pytest.raises(ValueError, match='num_frames=4'):
        unstack_frames(stacked, 4)


def test_tsm_matches_explicit_reference():
    n, t, c = 2, 3, 16
    x = torch.randn(n * t, c, 2, 2)
    out = TemporalShift(t, shift_div=8)(x)
    v, o = x.view(n, t, c, 2, 2), out.view(n, t, c, 2, 2)
    fold = c // 8
    for b in range(n):
        for f in range(t):
            nxt = v[b, f + 1, :fold] if f + 1 < t else torch.zeros_like(
                v[b, f, :fold])
            prv = v[b, f - 1, fold:2 * fold] if f > 0 else torch.zeros_like(
                v[b, f, fold:2 * fold])
            assert torch.equal(o[b, f, :fold], nxt)
            assert torch.equal(o[b, f, fold:2 * fold], prv)
            assert torch.equal(o[b, f, 2 * fold:], v[b, f, 2 * fold:])


def test_tsm_rejects_bad_batch():
    with pytest.raises(ValueError, match='num_frames=3'):
        TemporalShift(3)(torch.randn(4, 8, 2, 2))


def _official_gsf(x, gsf, t):
    """Independent reference of the official GSF algorithm (method.md 6a),
    written with BN3d-style statistics and explicit per-frame indexing."""
    nt, c, h, w = x.shape
    n, cg = nt // t, gsf.gsf_channels
    xg = x[:, :cg].reshape(n, t, cg, h, w).permute(0, 2, 1, 3, 4)  # N,C,T
    bn = gsf.bn
    xb = F.batch_norm(xg, None, None, bn.weight, bn.bias, True, 0., bn.eps)
    gate = torch.tanh(gsf.gate_conv(F.relu(xb)))  # N,2,T,H,W
    half = cg // 2
    outs = []
    fw, fb = gsf.fuse_conv.weight, gsf.fuse_conv.bias
    for k, step in ((0, 1), (1, -1)):
        xk = xg[:, k * half:(k + 1) * half]
        y = gate[:, k:k + 1] * xk
        r = xk - y
        ys = torch.zeros_like(y)
        for f in range(t):
            if 0 <= f + step < t:
                ys[:, :, f] = y[:, :, f + step]
        stats = torch.stack([ys.mean((-2, -1)), r.mean((-2, -1))], 1)
        wk = torch.sigmoid(
            F.conv2d(stats, fw[k:k + 1], fb[k:k + 1], padding=1))  # N,1,C,T
        wk = wk[:, 0, :, :, None, None]
        z = wk * ys + (1 - wk) * r  # N, half, T, H, W
        # official interleave: (2, half/2) -> (half/2, 2)
        z = z.view(n, 2, half // 2, t, h, w).transpose(1, 2).reshape(
            n, half, t, h, w)
        outs.append(z)
    z = torch.cat(outs, 1).permute(0, 2, 1, 3, 4).reshape(nt, cg, h, w)
    return torch.cat([z, x[:, cg:]], 1)


def test_gsf_matches_official_algorithm_with_random_weights():
    torch.manual_seed(0)
    t = 4
    gsf = GateShiftFuse(32, t, gsf_ratio=0.25, init='official',
                        channel_interleave=True, rescale_fusion=False)
    with torch.no_grad():
        gsf.bn.weight.uniform_(0.5, 1.5)
        gsf.bn.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2 * t, 32, 5, 6)
    out = gsf.train()(x)
    official = _official_gsf(x, gsf, t)
    assert gsf.gsf_channels == 8
    assert torch.allclose(out, official, atol=1e-5)
    # the 24 channels beyond gsf_ratio pass unchanged
    assert torch.equal(out[:, 8:], x[:, 8:])
    assert not torch.allclose(out[:, :8], x[:, :8])

    # the defaults (ours) are the official module up to a fixed per-channel
    # map in front of the next BN: no interleave, fused channels times 2
    ours = GateShiftFuse(32, t, gsf_ratio=0.25)
    ours.load_state_dict(gsf.state_dict())
    out = ours.train()(x)
    perm = torch.arange(4).view(2, 2).t().reshape(4)  # per half
    perm = torch.cat([perm, perm + 4])
    assert torch.allclose(out[:, perm], 2 * official[:, :8], atol=1e-5)
    assert torch.equal(out[:, 8:], x[:, 8:])


def test_gsf_official_init_is_the_official_resnets():
    torch.manual_seed(0)
    # the official ResNet: kaiming_normal_(fan_out, relu) on every Conv2d,
    # here each 2->1 fusion conv: std sqrt(2 / (1 * 3 * 3))
    weights = torch.cat([
        GateShiftFuse(32, 2, init='official').fuse_conv.weight.flatten()
        for _ in range(50)
    ])
    assert abs(weights.std().item() - (2 / 9)**0.5) < 0.03
    assert abs(weights.mean().item()) < 0.03
    zero = GateShiftFuse(32, 2)
    assert zero.fuse_conv.weight.abs().sum() == 0


def test_gsf_shift_direction_with_hand_made_gate():
    t = 3
    gsf = GateShiftFuse(8, t, gsf_ratio=1.0, rescale_fusion=False)
    with torch.no_grad():
        gsf.gate_conv.bias.fill_(50.)  # tanh -> 1: everything is gated
        gsf.fuse_conv.bias.fill_(50.)  # sigmoid -> 1: take the shifted part
    x = torch.randn(2 * t, 8, 3, 3)
    out = gsf.eval()(x).view(2, t, 8, 3, 3)
    v = x.view(2, t, 8, 3, 3)
    # first half: frame f reads frame f+1 (zero at the last frame)
    assert torch.allclose(out[:, :2, :4], v[:, 1:, :4], atol=1e-5)
    assert torch.allclose(out[:, 2, :4], torch.zeros(2, 4, 3, 3), atol=1e-5)
    # second half: frame f reads frame f-1 (zero at the first frame)
    assert torch.allclose(out[:, 1:, 4:], v[:, :2, 4:], atol=1e-5)
    assert torch.allclose(out[:, 0, 4:], torch.zeros(2, 4, 3, 3), atol=1e-5)


@pytest.mark.parametrize('train', [True, False])
def test_gsf_zero_gate_init_is_the_identity(train):
    t = 3
    gsf = GateShiftFuse(16, t, gsf_ratio=0.5).train(train)
    with torch.no_grad():  # non-trivial gate-branch BN statistics
        gsf.bn.running_mean.uniform_(-1, 1)
        gsf.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2 * t, 16, 4, 4)
    out = gsf(x)
    # gate 0 (no frame mixing), fusion weight 1/2 rescaled: exactly x
    assert torch.equal(out, x)
    # the official fusion halves the gated channels, and its interleave
    # permutes them
    official = GateShiftFuse(16, t, gsf_ratio=0.5, channel_interleave=True,
                             rescale_fusion=False).train(train)(x)
    perm = torch.arange(8).view(2, 2, 2).transpose(1, 2).reshape(8)
    assert torch.allclose(official[:, :8], x[:, perm] / 2, atol=1e-6)
    # after a step on the gate, frames mix
    with torch.no_grad():
        torch.nn.init.normal_(gsf.gate_conv.weight, std=0.5)
    x2 = x.clone()
    x2[1] += 10  # change frame 1 of image 0 only
    diff = (gsf(x2) - gsf(x)).abs().flatten(1).amax(1)
    assert diff[[0, 2]].min() > 0
    if not train:  # (train-mode BN statistics mix the images)
        assert diff[[3, 4, 5]].max() == 0


def test_gsf_gradients_reach_input_and_both_convs():
    gsf = GateShiftFuse(16, 2, gsf_ratio=0.5)  # zero-gate init
    x = torch.randn(4, 16, 4, 4, requires_grad=True)
    target = torch.randn(4, 16, 4, 4)
    ((gsf(x) - target)**2).sum().backward()
    assert x.grad.abs().sum() > 0
    assert gsf.gate_conv.weight.grad.abs().sum() > 0
    assert gsf.fuse_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('kwargs, field', [
    (dict(gsf_ratio=0.), 'gsf_ratio'),
    (dict(gsf_ratio=1.5), 'gsf_ratio'),
    (dict(init='xavier'), 'gsf_init'),
    (dict(num_frames=0), 'num_frames'),
])
def test_gsf_bad_args(kwargs, field):
    args = dict(channels=16, num_frames=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        GateShiftFuse(**args)
