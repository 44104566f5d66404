"""Data preprocessors that turn each image into a DAS video on the device.

Both preprocessors hand the model ``inputs`` of shape ``[N, T*C, H, W]``
(frames stacked frame-major along the channels, see :mod:`mmdas.video`) and
put into every data sample's metainfo:

- ``das_matrices``: float32 ``[T, 3, 3]`` forward maps of the frames in
  the normalised coordinates of the image itself (:mod:`mmdas.geometry`),
  on the inputs' device: the same whether or not the batch is padded;
- ``das_num_frames`` and ``das_reference_frame`` (ints);
- ``das_image_box``: ``(x0, y0, x1, y1)``, where the image lies on the
  network input, in pixels, and ``das_input_shape``: ``(H, W)`` of the
  (padded) network input. The fusion head needs them to inverse-warp the
  logits of a padded batch.

Two modes:

- **on-device generation** (``policy=...`` or ``cell=...``): the parent
  preprocessor first does its usual work on the 3-channel images (BGR->RGB,
  normalisation, padding and stacking), then all T frames of all images are
  warped in one batched ``grid_sample``. Each image turns about its own
  centre, not the padded canvas's: the frames are those of the unpadded
  image, padded afterwards (:func:`mmdas.video.warp_frames`). Pixels from
  outside the image (padding included) are black, exactly as in
  :class:`~mmdas.datasets.DASImageToVideo`; the padded border keeps the
  padding value.
- **frames from the pipeline** (neither given): ``inputs`` already hold the
  ``T*C`` channels made by ``DASImageToVideo``; each frame is colour
  converted and normalised like a 3-channel image, and the maps are read
  from the metainfo that ``PackDASSegInputs`` / ``PackDASInputs`` packed.

For the same policy both modes give the same ``inputs`` and metainfo (up
to float rounding), padded or not.
"""
import contextlib
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmpretrain.models import ClsDataPreprocessor
from mmseg.models import SegDataPreProcessor
from torch import Tensor

from mmdas.geometry import per_image_matrices, reference_frame
from mmdas.policy import DASPolicy, build_policy, check_num_frames
from mmdas.registry import MODELS
from mmdas.video import stack_frames, warp_frames
from ..frozen_das_cell import is_frozen_cell_file, load_frozen_cell


def _image_boxes(inputs, samples=None, name: str = 'DAS preprocessor'
                 ) -> Tensor:
    """``[N, 4]`` box of each image on the batch canvas, before padding.

    mmseg's and mmpretrain's preprocessors pad at the right and bottom, so
    image n covers ``(0, 0, w_n, h_n)`` of the canvas; so does a pipeline
    :class:`~mmdas.datasets.DASPad`, whose ``das_image_shape`` gives
    ``(h_n, w_n)``. A pipeline ``Pad`` records nothing of the image: refused.
    """
    if isinstance(inputs, Tensor):
        sizes = [tuple(inputs.shape[-2:])] * inputs.shape[0]
    else:
        sizes = [tuple(x.shape[-2:]) for x in inputs]
    for i, sample in enumerate(samples or ()):
        meta = sample.metainfo
        shape = meta.get('das_image_shape')
        if shape is None:
            # pad_shape without padding_size: a pipeline Pad, not the
            # preprocessor's own padding (mmseg's stack_batch sets both)
            if ('pad_shape' in meta and 'padding_size' not in meta
                    and 'das_image_box' not in meta):
                raise ValueError(
                    f'{name}: image {i} was padded in the pipeline '
                    f"(pad_shape={tuple(meta['pad_shape'])}, e.g. mmseg's "
                    "dict(type='Pad', size=crop_size)), which records "
                    'nothing of where the image ends: DAS frames would turn '
                    'about the padded canvas and count the padding as image. '
                    "Use dict(type='DASPad', ...) (Pad's arguments) and "
                    "dict(type='PackDASSegInputs') / PackDASInputs, or let "
                    'the data preprocessor pad (its `size`).')
            continue
        h, w = (int(v) for v in shape)
        if h > sizes[i][0] or w > sizes[i][1] or h < 1 or w < 1:
            raise ValueError(
                f'{name}: das_image_shape {tuple(shape)} of image {i} does '
                f'not fit its input of size {sizes[i]}.')
        sizes[i] = (h, w)
    return torch.tensor([[0, 0, w, h] for h, w in sizes])


def build_das_source(policy, cell, name: str) -> Tuple[Optional[DASPolicy],
                                                      Optional[nn.Module]]:
    """The ``(policy, cell)`` a DAS preprocessor's arguments describe.

    A policy path holding a frozen cell (what a multi-node search writes
    where a policy goes) becomes the cell. The config check
    (:func:`mmdas.utils.launch.check_das_frames`) calls this too, so that a
    bad policy fails before anything is built.

    Args:
        policy (dict | str | DASPolicy, optional): The ``policy`` argument.
        cell (dict | nn.Module, optional): The ``cell`` argument.
        name (str): The field that holds them, for error messages.
    """
    if is_frozen_cell_file(policy):
        policy, cell = None, load_frozen_cell(policy)
    if policy is not None and cell is not None:
        raise ValueError(f'{name}: give either `policy` (a fixed DAS '
                         f'policy) or `cell` (a DASCell to search), not '
                         f'both.')
    if policy is not None:
        return build_policy(policy, field=f'{name}.policy'), None
    if cell is not None:
        return None, MODELS.build(cell) if isinstance(cell, dict) else cell
    return None, None


def check_matrices_are_current(samples, sizes, name: str) -> None:
    """Refuse pipeline frames whose ``das_matrices`` a later geometric
    transform made stale (see ``das_matrices_for`` of
    :class:`~mmdas.datasets.DASImageToVideo`).

    Args:
        samples (Sequence): Data samples with the pipeline's metainfo.
        sizes (Sequence[tuple]): ``(h, w)`` of each image as it reaches the
            model (the unpadded image).
        name (str): Who checks, for the message.
    """
    for i, (sample, size) in enumerate(zip(samples, sizes)):
        meta = sample.metainfo
        made_for = meta.get('das_matrices_for')
        if made_for is None:
            continue
        changed = []
        if tuple(made_for['img_shape']) != tuple(size):
            changed.append(f"size {tuple(made_for['img_shape'])} -> "
                           f'{tuple(size)} (a Resize, RandomResize, '
                           'RandomCrop or plain Pad)')
        flip = bool(meta.get('flip', False))
        direction = meta.get('flip_direction') if flip else None
        if (flip, direction) != (bool(made_for['flip']),
                                 made_for['flip_direction']):
            changed.append(f"flip {made_for['flip']} "
                           f"({made_for['flip_direction']}) -> {flip} "
                           f'({direction}) (a RandomFlip, or a TTA flip)')
        if changed:
            raise ValueError(
                f'{name}: the das_matrices of image {i} '
                f"({meta.get('img_path', 'no path')}) were made by "
                'DASImageToVideo for another image than the one that '
                f"reaches the model: {'; '.join(changed)} after "
                'DASImageToVideo. The inverse warp would misalign. Put '
                'DASImageToVideo after every geometric transform of the '
                'pipeline (pad with DASPad after it), or make the frames in '
                'the data preprocessor (`policy=`).')


class _DASVideoMixin:
    """What the mmseg and mmpretrain DAS preprocessors share."""

    #: attribute of the parent that switches BGR<->RGB conversion on
    _conversion_attr = ''

    def _init_das(self, policy, cell, num_frames, name: str) -> None:
        self.policy: Optional[DASPolicy]
        self.cell: Optional[nn.Module]
        self.policy, self.cell = build_das_source(policy, cell, name)
        source = self.policy if self.policy is not None else self.cell
        frames = source.num_frames if source is not None else None
        if num_frames is not None:
            num_frames = check_num_frames(num_frames, f'{name}.num_frames')
            if frames is not None and frames != num_frames:
                raise ValueError(
                    f'{name}.num_frames: {num_frames} differs from the '
                    f'{frames} frames of the policy/cell; leave it out.')
        self.num_frames = frames if frames is not None else num_frames
        self._das_name = name

    @property
    def generates_frames(self) -> bool:
        """Whether frames are made here (True) or come from the pipeline."""
        return self.policy is not None or self.cell is not None

    def _background(self, channels: int, like: Tensor) -> Tensor:
        """Per-channel value of a black raw pixel after normalisation."""
        if self._enable_normalize and self.mean.numel() == channels:
            return (-self.mean / self.std).reshape(channels).to(like)
        return like.new_zeros(channels)

    def _make_video(self, inputs: Tensor, boxes: Tensor):
        """``[N, C, H, W]`` -> ``[N, T*C, H, W]`` and ``[N, T, 3, 3]`` maps,
        each image's relative to itself (``boxes`` on the canvas)."""
        channels = inputs.shape[1]
        background = self._background(channels, inputs)
        if self.cell is not None:
            frames, mats = self.cell(
                inputs, background=background, image_boxes=boxes)
        else:
            mats = per_image_matrices(self.policy.matrices, boxes,
                                      inputs.device)
            frames = warp_frames(
                inputs.unsqueeze(1).expand(-1, self.num_frames, -1, -1, -1),
                mats, background, image_boxes=boxes)
        return stack_frames(frames), mats.float()

    def _set_das_metainfo(self, data_samples, mats: Tensor, boxes: Tensor,
                          input_shape) -> None:
        if data_samples is None:
            return
        profile = (self.policy.profile
                   if self.policy is not None else self.cell.profile)
        for i, sample in enumerate(data_samples):
            sample.set_metainfo(
                dict(
                    das_matrices=mats[i].detach(),
                    das_num_frames=self.num_frames,
                    das_reference_frame=reference_frame(
                        self.num_frames, profile),
                    das_image_box=tuple(int(v) for v in boxes[i].tolist()),
                    das_input_shape=tuple(int(v) for v in input_shape)))

    def _frames_from_pipeline(self, data: dict, training: bool) -> dict:
        """Colour-convert and normalise pipeline frames frame by frame."""
        data = self.cast_data(data)
        samples = data.get('data_samples', None)
        inputs = data['inputs']
        num_frames = self._pipeline_num_frames(samples, inputs)
        convert = getattr(self, self._conversion_attr)

        def per_frame(x: Tensor) -> Tensor:
            # x: [..., T*C, H, W]; the parent's per-channel ops on each frame
            *lead, tc, h, w = x.shape
            video = x.reshape(*lead, num_frames, tc // num_frames, h, w)
            if convert and video.shape[-3] == 3:
                video = video.flip(-3)
            video = video.float()
            if self._enable_normalize:
                video = (video - self.mean) / self.std
            return video.reshape(*lead, tc, h, w)

        boxes = _image_boxes(inputs, samples, self._das_name)
        if samples is not None:
            check_matrices_are_current(
                samples, [(b[3], b[2]) for b in boxes.tolist()],
                self._das_name)
        if isinstance(inputs, Tensor):
            data['inputs'] = per_frame(inputs)
        else:
            data['inputs'] = [per_frame(x) for x in inputs]
        with self._parent_skips_colour_and_normalisation():
            out = super().forward(data, training)
        if samples is not None:
            device = out['inputs'].device
            for i, sample in enumerate(out['data_samples']):
                mats = torch.as_tensor(
                    np.asarray(sample.metainfo['das_matrices']),
                    dtype=torch.float32)
                sample.set_metainfo(
                    dict(
                        das_matrices=mats.to(device),
                        das_image_box=tuple(boxes[i].tolist()),
                        das_input_shape=tuple(out['inputs'].shape[-2:])))
        return out

    def _pipeline_num_frames(self, samples, inputs) -> int:
        channels = (inputs.shape[1] if isinstance(inputs, Tensor) else
                    inputs[0].shape[0])
        name = self._das_name
        meta = samples[0].metainfo if samples else {}
        if samples and 'das_matrices' not in meta:
            raise KeyError(
                f'{name}: no `das_matrices` in the data samples. With neither '
                f'`policy` nor `cell`, frames must come from the '
                f'DASImageToVideo transform, packed by PackDASSegInputs / '
                f'PackDASInputs (or PackSegInputs / PackInputs with '
                f'meta_keys including das_matrices, das_num_frames, '
                f'das_reference_frame).')
        num_frames = meta.get('das_num_frames', self.num_frames)
        if num_frames is None:
            raise ValueError(f'{name}: cannot tell the number of frames; set '
                             f'`num_frames` or pack the DAS metainfo.')
        if self.num_frames is not None and num_frames != self.num_frames:
            raise ValueError(
                f'{name}.num_frames: {self.num_frames}, but the pipeline '
                f'made {num_frames} frames.')
        per_frame = self.mean.numel() if self._enable_normalize else None
        if channels % num_frames or (per_frame and
                                     channels != num_frames * per_frame):
            raise ValueError(
                f'{name}: inputs have {channels} channels, which is not '
                f'{num_frames} frames of '
                f'{per_frame or "equal-sized"} channels. Is DASImageToVideo '
                f'missing from the pipeline, or should the preprocessor '
                f'generate frames (`policy=` or `cell=`)?')
        return num_frames

    @contextlib.contextmanager
    def _parent_skips_colour_and_normalisation(self):
        # the parent only knows 3-channel images; frames were already done
        saved = (getattr(self, self._conversion_attr), self._enable_normalize)
        setattr(self, self._conversion_attr, False)
        self._enable_normalize = False
        try:
            yield
        finally:
            setattr(self, self._conversion_attr, saved[0])
            self._enable_normalize = saved[1]

    def _das_forward(self, data: dict, training: bool) -> dict:
        if not self.generates_frames:
            return self._frames_from_pipeline(data, training)
        boxes = _image_boxes(data['inputs'], data.get('data_samples'),
                             self._das_name)
        out = super().forward(data, training)
        inputs = out['inputs']
        if isinstance(inputs, (list, tuple)):
            raise TypeError(f'{self._das_name}: expected a stacked batch.')
        out['inputs'], mats = self._make_video(inputs, boxes)
        self._set_das_metainfo(
            out.get('data_samples'), mats, boxes, inputs.shape[-2:])
        return out


@MODELS.register_module()
class DASSegDataPreProcessor(_DASVideoMixin, SegDataPreProcessor):
    """mmseg ``SegDataPreProcessor`` that outputs DAS videos
    ``[N, T*C, H, W]``.

    See :mod:`mmdas.models.data_preprocessors.das_preprocessor` for the two
    modes. ``gt_sem_seg`` is left as the original label map: the fused
    prediction is scored against the untransformed image.

    Args:
        policy (dict | str | DASPolicy, optional): Fixed policy
            ``dict(transforms=[dict(op=..., magnitude=...)], num_frames=8,
            profile='symmetric')``, a policy JSON path, or the frozen cell
            file a multi-node search writes (see
            :mod:`mmdas.models.frozen_das_cell`).
        cell (dict | DASCell, optional): A ``dict(type='DASCell', ...)`` to
            search with; it becomes the submodule ``cell``.
        num_frames (int, optional): Only to check the frames that come from
            the pipeline when neither ``policy`` nor ``cell`` is given.
        **kwargs: ``SegDataPreProcessor`` arguments (``mean``, ``std``,
            ``bgr_to_rgb``, ``size``, ...), for 3-channel images: in the
            pipeline mode they are applied frame by frame.
    """
    _conversion_attr = 'channel_conversion'

    def __init__(self,
                 policy: Optional[Union[dict, str, DASPolicy]] = None,
                 cell: Optional[Union[dict, nn.Module]] = None,
                 num_frames: Optional[int] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self._init_das(policy, cell, num_frames, 'DASSegDataPreProcessor')

    def forward(self, data: dict, training: bool = False) -> dict:
        return self._das_forward(data, training)


@MODELS.register_module()
class DASClsDataPreprocessor(_DASVideoMixin, ClsDataPreprocessor):
    """mmpretrain ``ClsDataPreprocessor`` that outputs DAS videos
    ``[N, T*C, H, W]``.

    Batch augmentations (mixup, cutmix) act on the images, before frames are
    made. Arguments are as for :class:`DASSegDataPreProcessor`, plus the
    ``ClsDataPreprocessor`` ones (``mean``, ``std``, ``to_rgb``, ...).
    """
    _conversion_attr = 'to_rgb'

    def __init__(self,
                 policy: Optional[Union[dict, str, DASPolicy]] = None,
                 cell: Optional[Union[dict, nn.Module]] = None,
                 num_frames: Optional[int] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self._init_das(policy, cell, num_frames, 'DASClsDataPreprocessor')

    def forward(self, data: dict, training: bool = False) -> dict:
        return self._das_forward(data, training)
