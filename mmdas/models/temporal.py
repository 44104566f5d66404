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

Every module works on the whole batch at once (no per-frame loops). Frame
``t`` of image ``n`` is batch index ``n*T + t`` (see :mod:`mmdas.video`).
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch import Tensor

TEMPORAL_MODULES = ('gsf', 'tsm', None)
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


def shift_frames(x: Tensor, offset: int) -> Tensor:
    """Shift along dim 1 (time) with zero padding: ``out[:, t] = x[:, t+o]``.

    Args:
        x (Tensor): ``[N, T, ...]``.
        offset (int): +1 reads the next frame (a shift back in time), -1 the
            previous frame.
    """
    if offset == 0:
        return x
    zeros = x.new_zeros((x.shape[0], abs(offset)) + x.shape[2:])
    if offset > 0:
        return torch.cat([x[:, offset:], zeros], dim=1)
    return torch.cat([zeros, x[:, :offset]], dim=1)


class TemporalShift(nn.Module):
    """TSM: shift part of the channels by one frame, zero padded.

    With ``fold = C // shift_div``, channels ``[0, fold)`` take the next
    frame's value (zero at the last frame), channels ``[fold, 2*fold)`` take
    the previous frame's value (zero at the first frame) and the others pass
    unchanged. No parameters.

    Args:
        num_frames (int): T.
        shift_div (int): Inverse of the shifted fraction per direction.
    """

    def __init__(self, num_frames: int, shift_div: int = 8):
        super().__init__()
        self.num_frames = num_frames
        self.shift_div = shift_div

    def forward(self, x: Tensor) -> Tensor:
        nt, c = x.shape[:2]
        n = _frames_per_clip(nt, self.num_frames, 'TemporalShift')
        fold = c // self.shift_div
        v = x.view(n, self.num_frames, c, *x.shape[2:])
        out = torch.cat([
            shift_frames(v[:, :, :fold], 1),
            shift_frames(v[:, :, fold:2 * fold], -1), v[:, :, 2 * fold:]
        ], dim=2)
        return out.view_as(x)

    def extra_repr(self) -> str:
        return f'num_frames={self.num_frames}, shift_div={self.shift_div}'


class GateShiftFuse(nn.Module):
    """Gate-Shift-Fuse on the first ``gsf_ratio`` of the channels.

    The algorithm of the official ``gsf.py``, batched over frames. Let
    ``C'`` be ``int(C * gsf_ratio)`` rounded up to a multiple of 4 (the
    official code rounds to even; a multiple of 4 keeps its channel interleave
    defined and is the same for every ResNet width). On ``x`` =
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
        gated = int(math.ceil(int(channels * gsf_ratio) / 4)) * 4
        gated = min(max(gated, 4), channels - channels % 4)
        if gated < 4:
            raise ValueError(f'GateShiftFuse needs at least 4 channels, got '
                             f'{channels}.')
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

    def _gate_logits(self, x: Tensor, n: int) -> Tensor:
        """``gate_conv`` (3x3x3, 2 groups, zero padded) of ``[N*T, C', H, W]``
        frames as one 2D conv plus a shift-and-sum over time: ``[N, T, 2, H,
        W]``.

        Why: CPU backends run a 2-output grouped Conv3d through a slow
        vol2col path (it dominated GSF's cost); the 2D conv with the temporal
        taps as extra output channels does the same arithmetic with the fast
        2D kernels. The parameters stay those of the official ``Conv3d``.
        """
        weight, bias = self.gate_conv.weight, self.gate_conv.bias
        kt = weight.shape[2]
        # [2, C'/2, kT, 3, 3] -> [2*kT, C'/2, 3, 3], out channel = g*kT + k
        taps = weight.transpose(1, 2).reshape(2 * kt, -1, *weight.shape[3:])
        out = F.conv2d(x, taps, None, padding=self.gate_conv.padding[1:],
                       groups=2)
        out = out.view(n, self.num_frames, 2, kt, *out.shape[2:])
        # tap k reads frame t + k - kT//2, zero outside the clip
        gate = sum(
            shift_frames(out[:, :, :, k], k - kt // 2) for k in range(kt))
        return gate + bias.view(1, 1, 2, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        nt, c, h, w = x.shape
        t = self.num_frames
        n = _frames_per_clip(nt, t, 'GateShiftFuse')
        cg = self.gsf_channels
        # split, not two slices: its backward is one cat, not two
        # full-size zero-filled gradients
        xg, rest = x.split([cg, c - cg], dim=1)

        gate = torch.tanh(self._gate_logits(F.relu(self.bn(xg)), n))
        v = xg.reshape(n, t, 2, cg // 2, h, w)
        y = gate.unsqueeze(3) * v
        r = v - y
        y = torch.stack([shift_frames(y[:, :, 0], 1),
                         shift_frames(y[:, :, 1], -1)], dim=2)

        # fusion weights from the (channel, time) plane of spatial averages
        stats = torch.stack([y.mean((-2, -1)), r.mean((-2, -1))], dim=3)
        stats = stats.permute(0, 2, 3, 4, 1).reshape(n, 4, cg // 2, t)
        weight = torch.sigmoid(self.fuse_conv(stats))  # N, 2, C'/2, T
        weight = weight.permute(0, 3, 1, 2)[..., None, None]
        total = 1.
        if self.rescale_fusion:  # on the small weights, not on y and r
            weight, total = 2 * weight, 2.
        z = weight * y + (total - weight) * r  # N, T, 2, C'/2, H, W

        if self.channel_interleave:
            z = z.view(n, t, 2, 2, cg // 4, h, w).transpose(3, 4)
        z = z.reshape(nt, cg, h, w)
        return torch.cat([z, rest], dim=1)

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, gsf_channels={self.gsf_channels},'
                f' num_frames={self.num_frames}, init={self.init!r}, '
                f'channel_interleave={self.channel_interleave}, '
                f'rescale_fusion={self.rescale_fusion}')


class TemporalConv2d(nn.Conv2d):
    """A conv that applies a temporal module before or after itself.

    It shares the wrapped conv's ``weight``/``bias`` under the same state-dict
    names; the temporal module's state lives under ``temporal.``.

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
        if self.position == 'before':
            return super().forward(self.temporal(x))
        return self.temporal(super().forward(x))
