"""What the GSF/TSM ResNets of mmseg and mmpretrain share.

A video ResNet here is the stock 2D ResNet, built unchanged by its own
``__init__``, with a temporal module inserted into every residual block
afterwards (the way mmaction2's ``ResNetTSM`` does it):

* GSF: ``conv3 -> GSF -> bn3`` in a bottleneck, ``conv2 -> GSF -> bn2`` in a
  basic block, ``gsf_ratio`` of the block output channels gated.
* TSM: shift on the input of ``conv1`` inside the residual branch (the
  identity path is not shifted), 1/``shift_div`` of the channels each way.

The conv is replaced by a :class:`~mmdas.models.temporal.TemporalConv2d` that
keeps its parameter names, so every key of a plain 2D checkpoint is also a key
of the video ResNet.
"""
from typing import Dict, List, Optional, Union

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from mmdas.utils.offline import DOWNLOAD_ERRORS, raise_download_failed
from mmdas.video import unstack_frames

from ..temporal import (GateShiftFuse, TemporalConv2d, TemporalShift,
                        check_temporal_args)

# PyTorch-Encoding "deep base" ResNets (resnet50s etc.) name the V1c stem
# conv1.{0,1,3,4,6} and bn1; mmseg's ResNetV1c calls it stem.{0,...,7}.
_DEEP_STEM_RENAMES = {
    'conv1.0.': 'stem.0.',
    'conv1.1.': 'stem.1.',
    'conv1.3.': 'stem.3.',
    'conv1.4.': 'stem.4.',
    'conv1.6.': 'stem.6.',
    'bn1.': 'stem.7.',
}


def _split_pretrained(init_cfg):
    """Split ``init_cfg`` into (Pretrained cfg or None, the other cfgs)."""
    if init_cfg is None:
        return None, None
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg)
    pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
    others = [c for c in cfgs if c.get('type') != 'Pretrained']
    return (pretrained[-1] if pretrained else None), (others or None)


class VideoResNetMixin:
    """Turns a 2D ResNet class into a video ResNet (mixin, put it first).

    Args:
        num_frames (int): Frames T per image. Defaults to 8.
        temporal_module (str | None): ``'gsf'``, ``'tsm'`` or None (a 2D
            ResNet applied to every frame). Defaults to ``'gsf'``.
        gsf_ratio (float): Fraction of each block's output channels that GSF
            gates. Defaults to 0.25 (official GSF-ResNet).
        shift_div (int): TSM shifts ``1/shift_div`` of the channels each way.
            Defaults to 8.
        gsf_init (str): ``'zero_gate'`` (default; no frame mixing at start) or
            ``'official'``; see :class:`~mmdas.models.temporal.GateShiftFuse`.
        gsf_interleave (bool): Apply the official channel interleave of GSF.
            Defaults to False.
        gsf_rescale_fusion (bool): Scale GSF's fused channels by 2 (ours).
            Defaults to True. With both defaults and ``gsf_init='zero_gate'``
            the video ResNet computes every frame exactly as the 2D ResNet
            whose weights it loaded, in train and eval mode; see
            :class:`~mmdas.models.temporal.GateShiftFuse`.
        freeze_temporal (bool): Let ``frozen_stages`` and ``norm_eval``
            freeze the temporal modules of the stages they freeze (their
            parameters stop learning, their norms keep their running
            statistics). Defaults to False: the temporal modules are new
            (a 2D checkpoint has none), and a frozen zero-gate GSF would
            stay the identity for the whole run, so they stay trainable
            and in train mode; which ones that concerns is logged.
        **kwargs: Arguments of the 2D ResNet (``depth``, ``dilations``,
            ``strides``, ``contract_dilation``, ``norm_cfg``, ``with_cp``,
            ``init_cfg``...).

    Input: ``[N, T*C, H, W]`` frame-major stacked videos (what the DAS data
    preprocessors output); anything else is refused, so a model fed plain
    images cannot run GSF across unrelated images. Outputs are
    ``[N*T, ...]``.

    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)`` loads a
    2D checkpoint through :meth:`load_pretrained_2d`: keys are remapped where
    needed and the missing/unexpected ones are logged by name. The temporal
    modules keep their documented initialisation.
    """

    #: the data preprocessor whose output this backbone reads (for errors)
    das_preprocessor = 'a DAS data preprocessor'

    def __init__(self,
                 *args,
                 num_frames: int = 8,
                 temporal_module: Optional[str] = 'gsf',
                 gsf_ratio: float = 0.25,
                 shift_div: int = 8,
                 gsf_init: str = 'zero_gate',
                 gsf_interleave: bool = False,
                 gsf_rescale_fusion: bool = True,
                 freeze_temporal: bool = False,
                 **kwargs):
        check_temporal_args(temporal_module, num_frames, gsf_ratio, shift_div,
                            gsf_init)
        super().__init__(*args, **kwargs)
        self.num_frames = num_frames
        self.temporal_module = temporal_module
        self.gsf_ratio = gsf_ratio
        self.shift_div = shift_div
        self.gsf_init = gsf_init
        self.frame_channels = kwargs.get('in_channels', 3)
        self.pretrained_report: Optional[dict] = None
        if not isinstance(freeze_temporal, bool):
            raise TypeError(f'{type(self).__name__}.freeze_temporal: '
                            f'{freeze_temporal!r} must be True or False.')
        self.freeze_temporal = freeze_temporal
        if temporal_module is not None:
            self._insert_temporal_modules(gsf_interleave, gsf_rescale_fusion)
            self._log_frozen_temporal()
        self._freeze_stages()  # the temporal modules were not there yet

    def _insert_temporal_modules(self, gsf_interleave: bool,
                                 gsf_rescale_fusion: bool) -> None:
        for layer_name in self.res_layers:
            for block in getattr(self, layer_name):
                if self.temporal_module == 'tsm':
                    block.conv1 = TemporalConv2d(
                        block.conv1,
                        TemporalShift(self.num_frames, self.shift_div),
                        'before')
                    continue
                last = 'conv3' if hasattr(block, 'conv3') else 'conv2'
                conv = getattr(block, last)
                gsf = GateShiftFuse(
                    conv.out_channels,
                    self.num_frames,
                    self.gsf_ratio,
                    norm_cfg=self.norm_cfg,
                    init=self.gsf_init,
                    channel_interleave=gsf_interleave,
                    rescale_fusion=gsf_rescale_fusion)
                setattr(block, last, TemporalConv2d(conv, gsf, 'after'))

    def temporal_modules(self) -> List[nn.Module]:
        """The inserted GSF/TSM modules."""
        return [
            m.temporal for m in self.modules()
            if isinstance(m, TemporalConv2d)
        ]

    def _frozen_temporal(self) -> List[str]:
        """Names of the temporal modules that ``frozen_stages`` or
        ``norm_eval`` reach (their stage is frozen, or they hold norms)."""
        stages = getattr(self, 'frozen_stages', -1)
        norm_eval = getattr(self, 'norm_eval', False)
        names = []
        for i, layer_name in enumerate(self.res_layers, start=1):
            for name, m in getattr(self, layer_name).named_modules():
                if not isinstance(m, TemporalConv2d):
                    continue
                has_norm = any(
                    isinstance(n, nn.modules.batchnorm._BatchNorm)
                    for n in m.temporal.modules())
                has_params = any(True for _ in m.temporal.parameters())
                if (i <= stages and has_params) or (norm_eval and has_norm):
                    names.append(f'{layer_name}.{name}.temporal')
        return names

    def _log_frozen_temporal(self) -> None:
        names = self._frozen_temporal()
        if not names:
            return
        what = (f'frozen_stages={self.frozen_stages}, '
                f'norm_eval={self.norm_eval}')
        if self.freeze_temporal:
            msg = (f'freeze_temporal=True: {what} freeze {len(names)} '
                   f'{self.temporal_module} modules {names}')
        else:
            msg = (f'{what} leave the {len(names)} {self.temporal_module} '
                   f'modules they reach trainable and in train mode '
                   f'(freeze_temporal=True freezes them): {names}')
        print_log(f'{type(self).__name__}: {msg}', logger='current')

    def _freeze_stages(self) -> None:
        """The 2D ResNet's freezing, then the temporal modules it reached
        back to trainable and train mode unless ``freeze_temporal``."""
        super()._freeze_stages()
        if getattr(self, 'freeze_temporal', True):
            return  # (the 2D __init__ calls this before they exist)
        for m in self.temporal_modules():
            m.train(self.training)
            for param in m.parameters():
                param.requires_grad = True

    def train(self, mode: bool = True):
        """The 2D ResNet's ``train`` (``frozen_stages``, ``norm_eval``);
        the temporal modules follow ``mode`` unless ``freeze_temporal``."""
        super().train(mode)
        if not self.freeze_temporal:
            for m in self.temporal_modules():
                m.train(mode)
        return self

    def to_frames(self, x: Tensor) -> Tensor:
        """``[N, T*C, H, W]`` videos -> ``[N*T, C, H, W]`` frames.

        Only the stacked layout is accepted when T > 1: a frame batch
        ``[N*T, C, H, W]`` cannot be told apart from N*T unrelated images
        (what a plain data preprocessor outputs), which GSF/TSM would then
        mix as if they were frames of one video.
        """
        batch, channels = x.shape[:2]
        c, t = self.frame_channels, self.num_frames
        if channels == c * t:
            return unstack_frames(x, t)
        name = type(self).__name__
        if channels == c:
            raise ValueError(
                f'{name} is built for num_frames={t} and reads T-frame videos '
                f'stacked as [N, {t}*{c}, H, W], as {self.das_preprocessor} '
                f'outputs; got {list(x.shape)}, i.e. {c}-channel images. '
                "Set the model's data_preprocessor to "
                f"dict(type='{self.das_preprocessor}', policy=...) (in a "
                'config: model.data_preprocessor; the Runner ignores a '
                'top-level data_preprocessor once the model has one) or make '
                'the frames with DASImageToVideo in the pipeline.')
        raise ValueError(
            f'{name}: input has {channels} channels; expected '
            f'num_frames*in_channels = {t}*{c} (stacked frames). Check '
            'num_frames and in_channels.')

    def forward(self, x: Tensor):
        """Run the ResNet on all frames as one batch of ``N*T`` frames."""
        return super().forward(self.to_frames(x))

    def init_weights(self) -> None:
        """Stock 2D init, documented temporal init, then a 2D checkpoint."""
        pretrained, others = _split_pretrained(self.init_cfg)
        if pretrained is None:
            super().init_weights()
            # the 2D init_cfg (Kaiming on every Conv2d...) reached the
            # temporal convs too: restore their documented init
            for m in self.temporal_modules():
                if hasattr(m, 'reset_parameters'):
                    m.reset_parameters()
            return
        full_cfg = self.init_cfg
        self.init_cfg = others
        try:
            super().init_weights()
        finally:
            self.init_cfg = full_cfg
        for m in self.temporal_modules():
            if hasattr(m, 'reset_parameters'):
                m.reset_parameters()
        self.load_pretrained_2d(
            pretrained['checkpoint'],
            prefix=pretrained.get('prefix'),
            map_location=pretrained.get('map_location', 'cpu'))

    def load_pretrained_2d(self,
                           checkpoint: Union[str, Dict[str, Tensor]],
                           prefix: Optional[str] = None,
                           map_location: str = 'cpu') -> dict:
        """Load a 2D ResNet checkpoint into this video ResNet.

        Accepts mmseg/mmpretrain checkpoints (same names as ours), torchvision
        ones (same block names; ``fc.*`` is unexpected; a 7x7 ``conv1`` does
        not fit a V1c deep stem and is reported) and PyTorch-Encoding deep-base
        ones (``conv1.{0,1,3,4,6}``, ``bn1`` -> ``stem.*``). Whole-model
        checkpoints are cut to ``prefix`` (e.g. ``'backbone'``); without a
        prefix, ``backbone.`` is used when no key fits as it is.

        Args:
            checkpoint (str | dict): Path/URL (anything mmengine's
                ``CheckpointLoader`` reads) or a state dict.
            prefix (str, optional): Keep only keys under this prefix.
            map_location (str): Where to load tensors.

        Returns:
            dict: ``loaded``, ``missing``, ``unexpected`` and ``mismatched``
            key names and ``renamed`` (checkpoint name -> model name). Also
            kept in ``self.pretrained_report``.
        """
        if isinstance(checkpoint, str):
            try:
                ckpt = CheckpointLoader.load_checkpoint(
                    checkpoint, map_location=map_location)
            except DOWNLOAD_ERRORS as err:
                raise_download_failed(checkpoint, err)
        else:
            ckpt = checkpoint
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) \
            else ckpt
        state = {(k[7:] if k.startswith('module.') else k): v
                 for k, v in state.items()}
        own = self.state_dict()
        if prefix is None and not any(k in own for k in state) and any(
                k.startswith('backbone.') for k in state):
            prefix = 'backbone'
        unexpected = []
        if prefix:
            head = prefix.rstrip('.') + '.'
            unexpected += [k for k in state if not k.startswith(head)]
            state = {
                k[len(head):]: v
                for k, v in state.items() if k.startswith(head)
            }

        renamed = {}
        if 'stem.0.weight' in own and 'stem.0.weight' not in state \
                and 'conv1.0.weight' in state:
            for key in list(state):
                for old, new in _DEEP_STEM_RENAMES.items():
                    if key.startswith(old):
                        renamed[key] = new + key[len(old):]
                        state[renamed[key]] = state.pop(key)
                        break

        fitting, mismatched = {}, []
        for key, value in state.items():
            if key not in own:
                unexpected.append(key)
            elif own[key].shape != value.shape:
                mismatched.append(key)
            else:
                fitting[key] = value
        result = self.load_state_dict(fitting, strict=False)
        missing = sorted(result.missing_keys)  # mismatched ones included
        report = dict(
            loaded=sorted(fitting),
            missing=missing,
            unexpected=sorted(unexpected),
            mismatched=sorted(mismatched),
            renamed=renamed)
        self.pretrained_report = report
        self._log_report(report, checkpoint)
        return report

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A whole-model load (the Runner's load_from, load_checkpoint) of a
        # 2D checkpoint: say which modules are new rather than leave it to a
        # long "missing keys" list.
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        own = [k for k in self.state_dict() if '.temporal.' in k]
        missing = [k for k in own if prefix + k not in state_dict]
        if missing and any(k.startswith(prefix) for k in state_dict):
            print_log(self._new_modules_message(missing), logger='current')

    def _new_modules_message(self, missing_keys: List[str]) -> str:
        modules = sorted({k.split('.temporal.')[0] + '.temporal'
                          for k in missing_keys})
        init = f'{self.gsf_init} ' if self.temporal_module == 'gsf' else ''
        return (f'{type(self).__name__}: 2D checkpoint; new, keeping their '
                f'{init}init: {len(modules)} {self.temporal_module} modules '
                f'{modules}')

    def _log_report(self, report: dict, checkpoint) -> None:
        source = checkpoint if isinstance(checkpoint, str) else 'state dict'
        # the temporal modules are listed by _load_from_state_dict
        other = [k for k in report['missing'] if '.temporal.' not in k]
        name = type(self).__name__
        print_log(
            f'{name}: loaded {len(report["loaded"])} tensors from {source}.',
            logger='current')
        if report['renamed']:
            print_log(f'{name}: renamed checkpoint keys {report["renamed"]}',
                      logger='current')
        if other:
            print_log(f'{name}: missing keys in the checkpoint: {other}',
                      logger='current', level=30)
        if report['mismatched']:
            print_log(
                f'{name}: shape mismatch, not loaded: '
                f'{report["mismatched"]}', logger='current', level=30)
        if report['unexpected']:
            print_log(
                f'{name}: unexpected keys in the checkpoint: '
                f'{report["unexpected"]}', logger='current', level=30)
