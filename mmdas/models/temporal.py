"""Temporal modules for 2D ResNets reading ``[N*T, C, H, W]`` frame batches.

* :class:`GateShiftFuse` (GSF, Sudhakaran et al., TPAMI
  2023), the algorithm of the official ``gsf.py``: a grouped 3x3x3 conv gate,
  a one-frame shift of the two gated halves in opposite directions with zero
  padding, and a learned per-channel, per-frame sigmoid fusion.
* :class:`TemporalShift` (TSM, Lin et al., ICCV 2019): parameter-free shift of
  1/``shift_div`` of the channels one frame back and as many one frame
  forward.
* :class:`TemporalConv2d`: an ``nn.Conv2d`` that runs a temporal module on its
  input (TSM, before ``conv1``) or on its output (GSF, after ``conv3``). It
  keeps the wrapped conv's parameters under the same names, so a plain 2D
  ResNet checkpoint loads without any key remapping and the temporal
  parameters appear as extra keys ``<conv>.temporal.*``.

GSF and TSM each run as one autograd function that writes its result into
one output and recomputes its cheap products and shifts in the backward
pass, so they keep little for backward (``tests/test_temporal_fused.py``
checks them against plain autograd implementations).

Every module works on the whole batch at once (no per-frame loops). Frame
``t`` of image ``n`` is batch index ``n*T + t`` (see :mod:`mmdas.video`).
"""
import contextlib
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model.utils import _BatchNormXd
from torch import Tensor

TEMPORAL_MODULES = ('gsf', 'tsm', None)
# one-device BNs: 'BN', and SyncBN as mmengine reverts it on one device or
# a CPU. GSF runs them in one function with a written-out BN backward; any
# other norm (SyncBN across devices, GN, ...) runs on autograd.
_PLAIN_BATCH_NORMS = (nn.BatchNorm2d, _BatchNormXd)
GSF_INITS = ('zero_gate', 'official')


def check_temporal_args(temporal_module, num_frames, gsf_ratio=0.25,
                        shift_div=8, gsf_init='zero_gate') -> None:
    """Raise a ``ValueError`` naming the field for a bad temporal setting.

    Called in the backbones' ``__init__`` so that a bad config fails when the
    model is built, not at the first forward.
    """
    if temporal_module not in TEMPORAL_MODULES:
        raise ValueError(f'temporal_module: got {temporal_module!r}; valid '
                         f"choices are 'gsf', 'tsm' or None.")
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) \
            or num_frames < 1:
        raise ValueError(f'num_frames: got {num_frames!r}; it must be an int '
                         '>= 1.')
    if temporal_module == 'gsf':
        if not isinstance(gsf_ratio, (int, float)) or isinstance(
                gsf_ratio, bool) or not 0 < gsf_ratio <= 1:
            raise ValueError(
                f'gsf_ratio: got {gsf_ratio!r}; it is the fraction of the '
                'block output channels that GSF gates and must be in (0, 1] '
                '(the official default for ResNets is 0.25).')
        if gsf_init not in GSF_INITS:
            raise ValueError(f'gsf_init: got {gsf_init!r}; valid choices are '
                             f'{list(GSF_INITS)}.')
    if temporal_module == 'tsm' and (not isinstance(shift_div, int)
                                     or shift_div < 2):
        raise ValueError(f'shift_div: got {shift_div!r}; it must be an int '
                         '>= 2 (TSM shifts 1/shift_div of the channels each '
                         'way).')


def _frames_per_clip(batch: int, num_frames: int, where: str) -> int:
    if batch % num_frames:
        raise ValueError(
            f'{where}: batch of {batch} frames is not a multiple of '
            f'num_frames={num_frames}; feed [N, num_frames*C, H, W] stacked '
            'videos or [N*num_frames, C, H, W] frame batches.')
    return batch // num_frames


def _shift_channels(dst: Tensor, src: Tensor, fold: int,
                    sign: int) -> Tensor:
    """Write TSM's shift of ``src`` into ``dst`` (both ``[N, T, C, ...]``).

    ``sign=1`` is the forward shift: channels ``[0, fold)`` read the next
    frame, ``[fold, 2*fold)`` the previous one, zero where that frame does
    not exist. ``sign=-1`` is its transpose (the backward pass): the same
    channels move the other way. Slices into one output, no concatenation.
    """
    one, two = slice(0, fold), slice(fold, 2 * fold)
    for part, step in ((one, sign), (two, -sign)):
        d, s = dst[:, :, part], src[:, :, part]
        if step > 0:  # frame t reads frame t+1
            d[:, :-1].copy_(s[:, 1:])
            d[:, -1:].zero_()
        else:  # frame t reads frame t-1
            d[:, 1:].copy_(s[:, :-1])
            d[:, :1].zero_()
    dst[:, :, 2 * fold:].copy_(src[:, :, 2 * fold:])
    return dst


class _TemporalShiftFn(torch.autograd.Function):
    """TSM's shift; its backward is the opposite shift. Saves nothing."""

    @staticmethod
    def forward(ctx, x: Tensor, num_frames: int, fold: int) -> Tensor:
        ctx.num_frames, ctx.fold = num_frames, fold
        out = torch.empty_like(x)
        _shift_channels(_clip_view(out, num_frames),
                        _clip_view(x, num_frames), fold, 1)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        out = torch.empty_like(grad)
        _shift_channels(_clip_view(out, ctx.num_frames),
                        _clip_view(grad, ctx.num_frames), ctx.fold, -1)
        return out, None, None


def _clip_view(x: Tensor, num_frames: int) -> Tensor:
    """``[N*T, ...]`` -> ``[N, T, ...]`` as a view (never a copy)."""
    return x.view(x.shape[0] // num_frames, num_frames, *x.shape[1:])


class _ShiftConv2dFn(torch.autograd.Function):
    """``conv(tsm_shift(x))`` that keeps ``x``, not the shifted copy.

    In a ResNet block ``x`` is kept anyway (it is the identity path), so the
    shift costs no memory: the backward pass shifts ``x`` again for the
    weight gradient and shifts the input gradient back.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, num_frames, fold, stride, padding,
                dilation, groups):
        shifted = _shift_channels(
            _clip_view(torch.empty_like(x), num_frames),
            _clip_view(x, num_frames), fold, 1).flatten(0, 1)
        out = F.conv2d(shifted, weight, bias, stride, padding, dilation,
                       groups)  # under autocast: in its dtype
        ctx.save_for_backward(x, weight)
        ctx.args = (num_frames, fold, stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        num_frames, fold, stride, padding, dilation, groups = ctx.args
        # the conv ran in grad's dtype (autocast casts x and the weight)
        shifted = _shift_channels(
            _clip_view(torch.empty_like(x, dtype=grad.dtype), num_frames),
            _clip_view(x.to(grad.dtype), num_frames), fold,
            1).flatten(0, 1)
        need = ctx.needs_input_grad
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, shifted, weight.to(grad.dtype),
            [weight.shape[0]] if ctx.has_bias else None, stride, padding,
            dilation, False, [0, 0], groups,
            [need[0], need[1], ctx.has_bias and need[2]])
        if gx is not None:
            gx = _shift_channels(
                _clip_view(torch.empty_like(gx), num_frames),
                _clip_view(gx, num_frames), fold, -1).flatten(0, 1)
            gx = gx.to(x.dtype)
        if gw is not None:
            gw = gw.to(weight.dtype)
        if gb is not None:
            gb = gb.to(weight.dtype)
        return gx, gw, gb, None, None, None, None, None, None


class TemporalShift(nn.Module):
    """TSM: shift part of the channels by one frame, zero padded.

    With ``fold = C // shift_div``, channels ``[0, fold)`` take the next
    frame's value (zero at the last frame), channels ``[fold, 2*fold)`` take
    the previous frame's value (zero at the first frame) and the others pass
    unchanged. No parameters. The shift is one autograd function that
    writes slices into one output tensor (the backward writes the opposite
    shift), so nothing is kept for the backward pass.

    Args:
        num_frames (int): T.
        shift_div (int): Inverse of the shifted fraction per direction.
    """

    def __init__(self, num_frames: int, shift_div: int = 8):
        super().__init__()
        self.num_frames = num_frames
        self.shift_div = shift_div

    def forward(self, x: Tensor) -> Tensor:
        _frames_per_clip(x.shape[0], self.num_frames, 'TemporalShift')
        return _TemporalShiftFn.apply(x, self.num_frames,
                                      x.shape[1] // self.shift_div)

    def extra_repr(self) -> str:
        return f'num_frames={self.num_frames}, shift_div={self.shift_div}'


def _fused_view(out: Tensor, n: int, t: int, interleave: bool) -> Tensor:
    """The gated channels ``out[:, :C']`` as ``[N, T, 2, ..., H, W]`` in the
    order GSF computes them: ``[N, T, 2, C'/2, H, W]``, or with the official
    interleave ``[N, T, 2, 2, C'/4, H, W]`` where output channel
    ``k C'/2 + 2 j + i`` holds computed channel ``k C'/2 + i C'/4 + j``.
    A view, so results are written where they belong without a copy."""
    h, w = out.shape[-2:]
    if interleave:
        return out.view(n, t, 2, -1, 2, h, w).transpose(3, 4)
    return out.view(n, t, 2, -1, h, w)


def _fusion_stats(x: Tensor, gate: Tensor) -> Tensor:
    """Step 4's input, time-major: ``[N, 4, T, C'/2]``, channel ``2k + j``
    the spatial means of ``y_k'`` (j = 0) and of ``r_k`` (j = 1), from ``x``
    ``[N, T, 2, C'/2, H, W]`` and the gate ``[N, T, 2, H, W]``.

    Averaging commutes with the frame shift, so the means of ``y'`` and
    ``r`` come from one batched matmul of the gate with ``x`` and the mean
    of ``x``, without an activation-sized product. (One matmul with the
    gate and its complement would read ``x`` once, but einsum then copies
    ``x``: 7x slower at ``[4, 8, 2, 32, 28, 28]``.)
    """
    n, t = gate.shape[:2]
    h, w = x.shape[-2:]
    # the gate scaled first: a float16 sum over H*W could overflow
    gx = torch.einsum('ntkhw,ntkchw->ntkc', gate / (h * w), x)
    mx = x.mean((-2, -1))
    shifted = torch.stack([F.pad(gx[:, 1:, 0], (0, 0, 0, 1)),
                           F.pad(gx[:, :-1, 1], (0, 0, 1, 0))], dim=2)
    stats = torch.stack([shifted, mx - gx], dim=3)  # N, T, 2, 2, C'/2
    return stats.permute(0, 2, 3, 1, 4).reshape(n, 4, t, -1)


@contextlib.contextmanager
def _without_onednn(device: torch.device):
    """Run the convs inside on PyTorch's own CPU kernels, not oneDNN's.

    (``torch._C``'s switch, not the ``torch.backends.mkldnn.enabled``
    property: with the property, a GSF-ResNet compiled by ``torch.compile``
    no longer matched eager to 1e-5, ``tests/test_video_memory.py``. Nor
    ``torch.backends.mkldnn.flags``: it also resets the user's deterministic
    and TF32 settings for the window, and warns about TF32 on every call.)
    """
    if device.type != 'cpu':
        yield
        return
    enabled = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(enabled)


def _fuse_conv(stats: Tensor, weight: Tensor,
               bias: Optional[Tensor]) -> Tensor:
    """GSF's grouped 3x3 fusion conv over the (channel, time) plane of the
    time-major statistics ``[N, 4, T, C'/2]`` (:func:`_fusion_stats`), to
    ``[N, 2, T, C'/2]``. ``weight`` is the module's ``[2, 2, 3, 3]`` over
    (channel, time), transposed here.

    Why time-major, and off oneDNN on a CPU: oneDNN vectorises along the
    last axis, which is T (1 to 8) in the official (channel, time) layout,
    and sets up a primitive per call; with the long axis C'/2 last,
    PyTorch's own kernel runs this tiny conv 3-7x faster, forward and
    backward (0.14 against 0.97 ms at ``C'/2 = 256``, T = 1).
    """
    with _without_onednn(stats.device):
        return F.conv2d(stats, weight.to(stats.dtype).transpose(-1, -2),
                        None if bias is None else bias.to(stats.dtype),
                        padding=1, groups=2)


def _fuse_conv_backward(grad: Tensor, stats: Tensor, weight: Tensor,
                        has_bias: bool, need: tuple) -> tuple:
    """The gradients of :func:`_fuse_conv`'s ``stats``, ``weight`` and
    bias (``None`` where ``need`` says so), in ``weight``'s dtype."""
    with _without_onednn(stats.device):
        d_stats, d_w, d_b = torch.ops.aten.convolution_backward(
            grad, stats, weight.to(stats.dtype).transpose(-1, -2),
            [2] if has_bias else None, [1, 1], [1, 1], [1, 1], False,
            [0, 0], 2, [need[0], need[1], has_bias and need[2]])
    if d_w is not None:
        d_w = d_w.transpose(-1, -2).to(weight.dtype)
    if d_b is not None:
        d_b = d_b.to(weight.dtype)
    return d_stats, d_w, d_b


class _ToChannelsLast(torch.autograd.Function):
    """A channels_last copy whose gradient comes back in the input's
    (NCHW) layout, so the passes before it stay in one layout."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.contiguous(memory_format=torch.channels_last)
        # (1x1 maps are both layouts: a copy all the same, for the ReLU)
        return x.clone() if out is x else out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous()


def _gate_conv_forward(ctx, x, bn_weight, bn_bias, conv_weight, bn,
                       padding):
    """``conv2d(relu(bn(x)))`` of GSF's gate branch for a one-device BN,
    keeping only ``x`` (which the fusion keeps anyway) and BN's statistics:
    the normalised, rectified copy the conv and the ReLU would keep is
    recomputed by :func:`_gate_conv_backward` (two cheap passes over a
    quarter of the block's channels), so GSF keeps one quarter-copy of its
    block less. Runs inside :class:`_GateShiftFuseFn`, with its sub-context.

    ``bn`` is the module: its running statistics move as in a plain call
    (:func:`_batch_norm_with_stats`). The whole branch runs on a
    channels_last copy of ``x``: oneDNN's grouped conv is 4-7x faster so on
    a CPU, and so are BN's forward and backward (2-5x at ``[32, 64, 28,
    28]``: the NCHW kernels reduce over strided frames), so the one layout
    change is the copy in front of BN, not one after it.
    """
    act, mean, invstd, batch_stats = _batch_norm_with_stats(
        bn, x.contiguous(memory_format=torch.channels_last))
    out = F.conv2d(act.relu_(), conv_weight.to(act.dtype), None,
                   padding=padding, groups=2)
    ctx.save_for_backward(x, bn_weight, bn_bias, conv_weight, mean,
                          invstd)
    ctx.padding, ctx.eps, ctx.batch_stats = padding, bn.eps, batch_stats
    return out


def _gate_conv_backward(ctx, grad):
    """The gradients of :func:`_gate_conv_forward`'s inputs; the input's
    comes back channels_last (the caller adds it where it belongs)."""
    x, bn_weight, bn_bias, conv_weight, mean, invstd = ctx.saved_tensors
    need = ctx.needs_input_grad
    x = x.contiguous(memory_format=torch.channels_last)
    # relu(bn(x)) again, in the dtype the conv ran in
    scale = invstd if bn_weight is None else invstd * bn_weight
    shift = -mean * scale
    if bn_bias is not None:
        shift = shift + bn_bias
    act = torch.empty_like(x, dtype=grad.dtype,
                           memory_format=torch.channels_last)
    torch.addcmul(shift.view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1),
                  out=act).relu_()
    d_act, d_conv, _ = torch.ops.aten.convolution_backward(
        grad, act, conv_weight.to(grad.dtype), None, [1, 1],
        ctx.padding, [1, 1], False, [0, 0], 2,
        [need[0] or need[1] or need[2], need[3], False])
    d_x = d_w = d_b = None
    if d_act is not None:
        d_act = torch.ops.aten.threshold_backward(d_act, act, 0)
        del act
        d_x, d_w, d_b = torch.ops.aten.native_batch_norm_backward(
            d_act.contiguous(memory_format=torch.channels_last), x,
            bn_weight, None if ctx.batch_stats else mean,
            None if ctx.batch_stats else invstd.pow(-2) - ctx.eps, mean,
            invstd, ctx.batch_stats, ctx.eps,
            [need[0], need[1] and bn_weight is not None,
             need[2] and bn_bias is not None])
    if d_conv is not None:
        d_conv = d_conv.to(conv_weight.dtype)
    return d_x, d_w, d_b, d_conv, None, None


def _batch_norm_with_stats(bn: nn.modules.batchnorm._BatchNorm,
                           x: Tensor) -> tuple:
    """``bn(x)``, with the same running-statistics update as
    ``_BatchNorm.forward``, plus the mean and inverse std it normalised with
    and whether they were the batch's.

    ``F.batch_norm`` returns the output only; the backward pass needs the
    statistics, and computing them again costs a slow reduction (3x BN's
    own forward on ``[32, 64, 28, 28]``).
    """
    factor = 0. if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats \
            and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            factor = 1. / float(bn.num_batches_tracked)
    batch_stats = bn.training or (bn.running_mean is None
                                  and bn.running_var is None)
    tracked = not bn.training or bn.track_running_stats
    running_mean = bn.running_mean if tracked else None
    running_var = bn.running_var if tracked else None
    out, mean, invstd = torch.ops.aten.native_batch_norm(
        x, bn.weight, bn.bias, running_mean, running_var, batch_stats,
        factor, bn.eps)
    if not batch_stats:  # (empty on some backends): the running ones
        mean = running_mean.clone()
        invstd = torch.rsqrt(running_var + bn.eps)
    return out, mean, invstd, batch_stats


def _layout(x: Tensor):
    """``x``'s memory format: channels_last or contiguous."""
    return (torch.channels_last if x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last) else
            torch.contiguous_format)


class _GateTaps(torch.autograd.Function):
    """``tanh(sum_k taps[:, t + k - kT//2, :, k] + bias)``: GSF's gate from
    the per-tap outputs of its 2D conv, ``[N, T, 2, kT, H, W]`` ->
    ``[N, T, 2, H, W]``, zero outside the clip. One function (autograd would
    record a node and a zero-filled copy per slice of the sum); it keeps
    only the gate, whose backward is the opposite shift of ``dtanh``."""

    @staticmethod
    def forward(ctx, taps: Tensor, bias: Tensor) -> Tensor:
        t, kt = taps.shape[1], taps.shape[3]
        mid = kt // 2
        gate = taps[:, :, :, mid] + bias.to(taps.dtype).view(1, 1, 2, 1, 1)
        for k in range(kt):  # frame t reads frame t + k - mid
            step = k - mid
            if step > 0:
                gate[:, :t - step] += taps[:, step:, :, k]
            elif step < 0:
                gate[:, -step:] += taps[:, :t + step, :, k]
        gate.tanh_()
        ctx.save_for_backward(gate)
        ctx.kt, ctx.bias_dtype = kt, bias.dtype
        return gate

    @staticmethod
    def backward(ctx, grad: Tensor):
        gate, = ctx.saved_tensors
        kt = ctx.kt
        t, mid = gate.shape[1], kt // 2
        d_pre = grad * (1 - gate * gate)
        d_taps = gate.new_empty(*gate.shape[:3], kt, *gate.shape[3:])
        for k in range(kt):  # the transpose: tap k of frame u feeds u - step
            step, dst = k - mid, d_taps[:, :, :, k]
            if step > 0:
                dst[:, step:].copy_(d_pre[:, :t - step])
                dst[:, :step].zero_()
            elif step < 0:
                dst[:, :t + step].copy_(d_pre[:, -step:])
                dst[:, t + step:].zero_()
            else:
                dst.copy_(d_pre)
        d_bias = d_pre.sum((0, 1, 3, 4)).to(ctx.bias_dtype)
        return d_taps, d_bias


class _GatedFusion(torch.autograd.Function):
    """Steps 2 to 5 of :class:`GateShiftFuse`, as one function.

    ``w = sigmoid(fuse_conv(stats))`` and ``z_k = s (w_k y_k' + (1 - w_k)
    r_k)`` with ``y_k = g_k x_k``, ``r_k = x_k - y_k``, ``y'`` the frame
    shift of ``y`` and ``s`` 2 or 1, written with the untouched channels
    into one output. Only ``x_g`` (the gate's BN keeps it too), the gate,
    the statistics and ``w`` (small) are saved; the products and shifts are
    recomputed in the backward pass, which is written out here (autograd
    would keep every intermediate and sum four activation-sized gradients
    into ``x_g``).

    Inputs: ``xg`` ``[N*T, C', H, W]``, ``rest`` ``[N*T, C - C', H, W]``,
    ``gate`` ``[N, T, 2, H, W]``, the grouped 2->1 fusion conv's ``weight``
    ``[2, 2, 3, 3]`` and ``bias``.
    """

    @staticmethod
    def forward(ctx, xg, rest, gate, fuse_weight, fuse_bias, scale,
                interleave, memory_format, out=None):
        # out: the block tensor whose gated channels are overwritten in
        # place (by :class:`_GateShiftFuseFn`); None: a new output
        nt, cg, h, w = xg.shape
        n, t = gate.shape[:2]
        ctx.gate_dtype = gate.dtype  # (autocast: the gate may be float32)
        gate = gate.to(xg.dtype)
        stats = _fusion_stats(xg.view(n, t, 2, -1, h, w), gate)
        weight = torch.sigmoid(_fuse_conv(stats, fuse_weight, fuse_bias))
        if out is None:
            out = torch.empty((nt, cg + rest.shape[1], h, w),
                              dtype=rest.dtype, device=rest.device,
                              memory_format=memory_format)
            out[:, cg:].copy_(rest)
        dst = _fused_view(out[:, :cg], n, t, interleave)
        lead = dst.shape[:-2]
        x = xg.view(*lead, h, w)
        g = gate.view(n, t, 2, *[1] * (len(lead) - 3), h, w)
        # N, 2, T, C'/2 -> N, T, 2, C'/2 in the computed channel order
        sw = (scale * weight).transpose(1, 2).reshape(*lead, 1, 1)
        torch.mul(x, 1 - g, out=dst)  # r
        dst.mul_(scale - sw)
        if t > 1:  # (at T = 1 the shifted halves are all padding)
            y = x * g
            dst[:, :-1, 0].addcmul_(y[:, 1:, 0], sw[:, :-1, 0])
            dst[:, 1:, 1].addcmul_(y[:, :-1, 1], sw[:, 1:, 1])
        ctx.save_for_backward(xg, gate, stats, weight, fuse_weight)
        ctx.scale, ctx.interleave = scale, interleave
        ctx.has_bias = fuse_bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        xg, gate, stats, weight, fuse_weight = ctx.saved_tensors
        scale = ctx.scale
        nt, cg, h, w = xg.shape
        n, t = gate.shape[:2]
        dz = _fused_view(grad[:, :cg], n, t, ctx.interleave)
        lead = dz.shape[:-2]
        x = xg.view(*lead, h, w)
        g = gate.view(n, t, 2, *[1] * (len(lead) - 3), h, w)
        sw = (scale * weight).transpose(1, 2).reshape(*lead, 1, 1)
        sa = scale - sw  # s (1 - w)
        # dz/dw = s (y' - r) with y = g x, r = x - y: -r then + y', in one
        # buffer; each pass below reads and writes as few full-size tensors
        # as eager PyTorch allows (they are memory-bound)
        q = torch.mul(x, g - 1)
        if t > 1:
            q[:, :-1, 0].addcmul_(x[:, 1:, 0], g[:, 1:, 0])
            q[:, 1:, 1].addcmul_(x[:, :-1, 1], g[:, :-1, 1])
        grad_w = scale * q.mul_(dz).sum((-2, -1))  # lead
        del q  # (activation-sized temporaries: free each when done)
        # through the sigmoid and the fusion conv to the statistics
        grad_w = grad_w.reshape(n, t, 2, -1).transpose(1, 2)
        grad_logits = (grad_w * weight * (1 - weight)).contiguous()
        need = ctx.needs_input_grad
        d_stats, d_fw, d_fb = _fuse_conv_backward(
            grad_logits, stats, fuse_weight, ctx.has_bias,
            (True, need[3], need[4]))
        d_stats = d_stats.view(n, 2, 2, t, -1).permute(0, 3, 1, 2, 4)
        d_shifted, d_r = d_stats[..., 0, :], d_stats[..., 1, :]  # N,T,2,C
        # stats = [shift(gx), mx - gx]: back to the means gx and mx
        d_gx = -d_r
        if t > 1:
            d_gx[:, 1:, 0] += d_shifted[:, :-1, 0]
            d_gx[:, :-1, 1] += d_shifted[:, 1:, 1]
        hw = h * w
        # contiguous: the full-size results below take their layout from
        # these first operands, and must match dz's and x's
        d_gx = (d_gx / hw).reshape(*lead, 1, 1).contiguous()
        d_mx = (d_r / hw).reshape(*lead, 1, 1).contiguous()
        # d = dL/dy - dL/dr: dz/dy' = s w (y' -> y is the opposite shift),
        # dz/dr = s (1 - w), plus what the mean of g x adds to dL/dy
        d = torch.addcmul(d_gx, dz, sa, value=-1)
        if t > 1:
            d[:, 1:, 0].addcmul_(dz[:, :-1, 0], sw[:, :-1, 0])
            d[:, :-1, 1].addcmul_(dz[:, 1:, 1], sw[:, 1:, 1])
        # dL/dx = dL/dr + g d (+ the mean of x); dL/dg = sum_c x d
        # (where :class:`_GateShiftFuseFn` wants it: its full gradient)
        grad_x = getattr(ctx, 'grad_x_out', None)
        if grad_x is None:
            grad_x = torch.empty_like(xg)
        gxv = torch.addcmul(d_mx, dz, sa, out=grad_x.view(*lead, h, w))
        gxv.addcmul_(g, d)
        grad_g = d.mul_(x).sum(tuple(range(3, len(lead))))
        return (grad_x, grad[:, cg:], grad_g.to(ctx.gate_dtype), d_fw, d_fb,
                None, None, None, None)


# the functions' bodies as plain functions, run inside _GateShiftFuseFn
# (dynamo traces a Function's own forward/backward only as a Function's)
_gate_taps_forward = _GateTaps.forward
_gate_taps_backward = _GateTaps.backward
_fusion_forward = _GatedFusion.forward
_fusion_backward = _GatedFusion.backward


class _SubContext:
    """What a function's ``forward``/``backward`` use of ``ctx``, for running
    one inside another (:class:`_GateShiftFuseFn`)."""

    def __init__(self, needs_input_grad: tuple):
        self.needs_input_grad = needs_input_grad
        self.saved_tensors = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors


class _GateShiftFuseFn(torch.autograd.Function):
    """All of :class:`GateShiftFuse` with a one-device BN
    (``_PLAIN_BATCH_NORMS``), as one function: the gate branch
    (:func:`_gate_conv_forward`, :class:`_GateTaps`) and the fusion
    (:class:`_GatedFusion`) run inside it, so the gated copy's two gradients
    are summed in place into one full gradient, written where the untouched
    channels' gradient lies, instead of autograd summing them and
    concatenating the result with the rest.

    With ``inplace`` (the input is a conv's fresh output that nothing else
    uses, see :class:`TemporalConv2d`) the gated channels are overwritten in
    the input itself, marked dirty: the other channels are not copied.
    """

    @staticmethod
    def forward(ctx, x, bn_weight, bn_bias, taps_weight, gate_bias,
                fuse_weight, fuse_bias, bn, padding, num_frames, gated,
                scale, interleave, inplace):
        nt, _, h, w = x.shape
        n = nt // num_frames
        fmt = _layout(x)
        xg = x[:, :gated].contiguous(memory_format=fmt)
        need = ctx.needs_input_grad
        subs = (_SubContext((True, need[1], need[2], need[3], False, False)),
                _SubContext((True, need[4])),
                _SubContext((True, False, True, need[5], need[6], False,
                             False, False, False)))
        taps = _gate_conv_forward(subs[0], xg, bn_weight, bn_bias,
                                  taps_weight, bn, padding)
        gate = _gate_taps_forward(subs[1],
                                  taps.view(n, num_frames, 2, -1, h, w),
                                  gate_bias)
        if inplace:
            ctx.mark_dirty(x)
        out = _fusion_forward(subs[2], xg, x[:, gated:], gate, fuse_weight,
                              fuse_bias, scale, interleave, fmt,
                              x if inplace else None)
        saved = [sub.saved_tensors for sub in subs]
        ctx.sizes = [len(t) for t in saved]
        # autograd keeps them (saved-tensor hooks, version checks), not subs
        ctx.save_for_backward(*[t for ts in saved for t in ts])
        for sub in subs:
            sub.saved_tensors = ()
        ctx.subs, ctx.gated, ctx.taps_shape = subs, gated, taps.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        saved, subs = ctx.saved_tensors, ctx.subs
        for sub, size in zip(subs, ctx.sizes):
            sub.saved_tensors, saved = saved[:size], saved[size:]
        cg = ctx.gated
        grad_x = torch.empty_like(grad, memory_format=_layout(grad))
        grad_x[:, cg:].copy_(grad[:, cg:])
        subs[2].grad_x_out = grad_x[:, :cg]
        _, _, d_gate, d_fw, d_fb, *_ = _fusion_backward(subs[2], grad)
        d_taps, d_gate_bias = _gate_taps_backward(subs[1], d_gate)
        d_xg, d_bn_w, d_bn_b, d_taps_w, _, _ = _gate_conv_backward(
            subs[0], d_taps.view(ctx.taps_shape))
        grad_x[:, :cg] += d_xg
        for sub in subs:  # (free what they kept)
            sub.saved_tensors = ()
        subs[2].grad_x_out = None
        return (grad_x, d_bn_w, d_bn_b, d_taps_w, d_gate_bias, d_fw, d_fb,
                None, None, None, None, None, None, None)


class GateShiftFuse(nn.Module):
    """Gate-Shift-Fuse on the first ``gsf_ratio`` of the channels.

    The algorithm of the official ``gsf.py``, batched over frames. Let
    ``C'`` be ``int(C * gsf_ratio)`` rounded up to even, as the official
    code counts (C = 40, ratio 1/4: 10 channels; 64 for every ResNet width
    of 256); the official interleave needs a multiple of 4 and is refused
    otherwise. On ``x`` =
    the first ``C'`` channels viewed as ``[N, C', T, H, W]``:

    1. ``g = tanh(conv3d(relu(bn(x))))``: a 3x3x3 conv with 2 groups gives one
       spatio-temporal gate per channel half, in (-1, 1).
    2. ``y_k = g_k * x_k`` and ``r_k = x_k - y_k`` for the halves k = 1, 2.
    3. ``y_1`` moves one frame back in time (``y_1'[t] = y_1[t+1]``), ``y_2``
       one frame forward (``y_2'[t] = y_2[t-1]``), zero padded.
    4. ``w_k = sigmoid(conv2d([avg(y_k'), avg(r_k)]))``: a 3x3 conv over the
       (channel, time) plane of the spatial averages gives one weight per
       channel and frame; ``z_k = w_k y_k' + (1 - w_k) r_k``.
    5. With ``channel_interleave=True`` each half's channels are interleaved
       as in the official code (viewed as ``(2, C'/4)`` and transposed).

    The other ``C - C'`` channels pass unchanged. The official BN3d over
    ``[N, C', T, H, W]`` equals a 2D BN over ``[N*T, C', H, W]`` (both
    normalise each channel over all other axes), so ``bn`` is built from the
    backbone's ``norm_cfg`` and SyncBN works.

    Starting from a 2D network (our defaults): with ``rescale_fusion=True``
    step 4 computes ``z_k = 2 (w_k y_k' + (1 - w_k) r_k)``, and with
    ``channel_interleave=False`` step 5 is skipped. The factor 2 is a fixed
    scale in front of the block's next BN, which absorbs it (up to BN's eps);
    skipping the interleave only changes which GSF channel feeds which
    residual channel, a fixed relabelling. Together they make a zero gate
    the identity. In the official module it is not: the
    interleave moves a quarter of the gated channels past the pretrained BN
    and conv, and ``w = 1/2`` halves the gated channels, which an eval-mode
    BN does not undo. ``channel_interleave=True, rescale_fusion=False`` is
    the official module exactly.

    Initialisation (``init``):

    * ``'zero_gate'`` (default, ours): the gate conv and the fusion convs
      start at zero. Then ``g = 0`` and ``w = 1/2``: no frame mixing, and
      with the default ``rescale_fusion`` and no interleave the module is
      exactly the identity, so a video ResNet loaded from 2D weights computes
      every frame as the 2D network does, in train and eval mode. Gradients
      reach both convs from the first step.
    * ``'official'``: the official GSF-ResNet's init: PyTorch's default for
      the gate ``Conv3d``, Kaiming normal (``fan_out``, ReLU) for the weights
      of the two 2->1 fusion convs (the official ResNet applies it to every
      ``Conv2d``), PyTorch's default for their biases. Frames mix from the
      first step.

    Args:
        channels (int): Channels C of the input.
        num_frames (int): T.
        gsf_ratio (float): Fraction of the channels gated. Defaults to 0.25.
        norm_cfg (dict): Norm of the gate branch. Defaults to BN.
        init (str): ``'zero_gate'`` or ``'official'``.
        channel_interleave (bool): Apply the official channel interleave.
            Defaults to False.
        rescale_fusion (bool): Scale the fused channels by 2 so that a zero
            gate is the identity. Defaults to True (False: official).
    """

    def __init__(self,
                 channels: int,
                 num_frames: int,
                 gsf_ratio: float = 0.25,
                 norm_cfg: Optional[dict] = None,
                 init: str = 'zero_gate',
                 channel_interleave: bool = False,
                 rescale_fusion: bool = True):
        super().__init__()
        check_temporal_args('gsf', num_frames, gsf_ratio, gsf_init=init)
        # the official count: int(C * ratio), made even (one half per gate)
        gated = int(channels * gsf_ratio)
        gated = min(max(gated + gated % 2, 2), channels - channels % 2)
        if gated < 2:
            raise ValueError(f'GateShiftFuse needs at least 2 channels, got '
                             f'{channels}.')
        if channel_interleave and gated % 4:
            raise ValueError(
                f'gsf_interleave: the official channel interleave splits '
                f'each half of the {gated} gated channels (of {channels}) in '
                f'two, so their count must be a multiple of 4; got '
                f'gsf_ratio={gsf_ratio}. Set gsf_interleave=False or a '
                'gsf_ratio whose int(C * gsf_ratio), made even, is a multiple '
                'of 4 in every block.')
        self.channels = channels
        self.num_frames = num_frames
        self.gsf_channels = gated
        self.init = init
        self.channel_interleave = channel_interleave
        self.rescale_fusion = rescale_fusion
        norm_cfg = dict(type='BN') if norm_cfg is None else norm_cfg
        self.bn = build_norm_layer(norm_cfg, gated)[1]
        self.gate_conv = nn.Conv3d(gated, 2, 3, padding=1, groups=2)
        # the official two 2->1 fusion convs, as one grouped conv
        self.fuse_conv = nn.Conv2d(4, 2, 3, padding=1, groups=2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Apply the documented initialisation (see the class docstring)."""
        for m in (self.gate_conv, self.fuse_conv):
            m.reset_parameters()
            if self.init == 'zero_gate':
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)
        if self.init == 'official':
            # kaiming_normal_(mode='fan_out') of each official 2->1 conv;
            # torch's fan_out of the grouped conv would count both outputs
            weight = self.fuse_conv.weight
            fan_out = weight.shape[0] // self.fuse_conv.groups * weight[
                0, 0].numel()
            nn.init.normal_(weight, 0., math.sqrt(2. / fan_out))
        if hasattr(self.bn, 'reset_parameters'):
            self.bn.reset_parameters()

    def _taps_weight(self) -> Tensor:
        """The gate ``Conv3d``'s weight as a 2D conv's, ``[2*kT', C'/2, 3,
        3]``: the 3x3x3 conv of ``[N*T, C', H, W]`` frames is then one 2D conv
        with the temporal taps as extra output channels (out channel ``g*kT'
        + k``) plus a shift-and-sum over time (:class:`_GateTaps`).

        Why: CPU backends run a 2-output grouped Conv3d through a slow
        vol2col path (it dominated GSF's cost); the 2D conv does the same
        arithmetic with the fast 2D kernels. Taps that can only read the zero
        padding (all but the middle one at T = 1) are left out. The
        parameters stay those of the official ``Conv3d``.
        """
        weight = self.gate_conv.weight
        kt, t = weight.shape[2], self.num_frames
        # taps k with |k - kT//2| < T can read a frame of the clip
        first = max(kt // 2 - t + 1, 0)
        weight = weight[:, :, first:kt - first]
        return weight.transpose(1, 2).reshape(-1, *weight.shape[1:2],
                                              *weight.shape[3:])

    def forward(self, x: Tensor, inplace: bool = False) -> Tensor:
        """``[N*T, C, H, W]`` -> the same shape and layout.

        Args:
            x (Tensor): The frames.
            inplace (bool): Overwrite the gated channels of ``x`` (saves a
                copy of the others). Only for a tensor nothing else uses, such
                as a conv's output (:class:`TemporalConv2d` sets it).
        """
        nt, c, h, w = x.shape
        n = _frames_per_clip(nt, self.num_frames, 'GateShiftFuse')
        cg = self.gsf_channels
        taps = self._taps_weight()
        padding = self.gate_conv.padding[1:]
        scale = 2. if self.rescale_fusion else 1.
        if type(self.bn) in _PLAIN_BATCH_NORMS:
            return _GateShiftFuseFn.apply(
                x, self.bn.weight, self.bn.bias, taps, self.gate_conv.bias,
                self.fuse_conv.weight, self.fuse_conv.bias, self.bn, padding,
                self.num_frames, cg, scale, self.channel_interleave, inplace)
        # any other norm (SyncBN, GN, ...) runs on autograd. The split's
        # backward is one cat of the two gradients. The gated part is copied
        # once, in the input's layout (the gate's norm and the fusion's
        # backward keep this copy), so the conv output itself need not be
        # kept. One layout for every element-wise pass: mixing channels_last
        # and NCHW operands makes each pass a slow strided one (2.3x slower
        # GSF at [32, 256, 28, 28] on a CPU); only the gate conv runs
        # channels_last (oneDNN's grouped conv is 4-7x faster so on a CPU).
        fmt = _layout(x)
        xg, rest = x.split([cg, c - cg], dim=1)
        xg = xg.contiguous(memory_format=fmt)
        act = self.bn(xg)
        if fmt is not torch.channels_last:
            act = _ToChannelsLast.apply(act)
        out = F.conv2d(F.relu(act, inplace=True), taps, None,
                       padding=padding, groups=2)
        gate = _GateTaps.apply(out.view(n, self.num_frames, 2, -1, h, w),
                               self.gate_conv.bias)
        return _GatedFusion.apply(xg, rest, gate, self.fuse_conv.weight,
                                  self.fuse_conv.bias, scale,
                                  self.channel_interleave, fmt)

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, gsf_channels={self.gsf_channels},'
                f' num_frames={self.num_frames}, init={self.init!r}, '
                f'channel_interleave={self.channel_interleave}, '
                f'rescale_fusion={self.rescale_fusion}')


class TemporalConv2d(nn.Conv2d):
    """A conv that applies a temporal module before or after itself.

    It shares the wrapped conv's ``weight``/``bias`` under the same state-dict
    names; the temporal module's state lives under ``temporal.``. A TSM shift
    before the conv runs as one function with it that keeps the unshifted
    input (which the block keeps for its identity path anyway) instead of a
    shifted copy, so TSM costs no activation memory.

    Args:
        conv (nn.Conv2d): The conv to wrap (a plain ``nn.Conv2d``).
        temporal (nn.Module): The temporal module.
        position (str): ``'before'`` (TSM) or ``'after'`` (GSF).
    """

    def __init__(self, conv: nn.Conv2d, temporal: nn.Module, position: str):
        if type(conv) is not nn.Conv2d:
            raise TypeError('temporal modules wrap plain nn.Conv2d layers '
                            f'(conv_cfg=None); got {type(conv).__name__}.')
        if position not in ('before', 'after'):
            raise ValueError(f"position: got {position!r}; valid choices are "
                             "'before' and 'after'.")
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device='meta')
        self.weight = conv.weight
        self.bias = conv.bias
        self.position = position
        self.temporal = temporal

    def init_weights(self) -> None:
        """Called by mmengine after the parent's init_cfg (e.g. Kaiming on
        every Conv2d) ran: restore the temporal module's documented init."""
        if hasattr(self.temporal, 'reset_parameters'):
            self.temporal.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        if self.position == 'before' and type(
                self.temporal) is TemporalShift and \
                self.padding_mode == 'zeros':
            tsm = self.temporal
            _frames_per_clip(x.shape[0], tsm.num_frames, 'TemporalShift')
            return _ShiftConv2dFn.apply(x, self.weight, self.bias,
                                        tsm.num_frames,
                                        x.shape[1] // tsm.shift_div,
                                        self.stride, self.padding,
                                        self.dilation, self.groups)
        if self.position == 'before':
            return super().forward(self.temporal(x))
        if type(self.temporal) is GateShiftFuse:
            # the conv's output is fresh and used by GSF alone (dynamo
            # refuses a function that writes into its input's views)
            return self.temporal(super().forward(x),
                                 inplace=not torch.compiler.is_compiling())
        return self.temporal(super().forward(x))
