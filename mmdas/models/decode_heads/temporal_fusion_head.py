"""Fuse the T per-frame logit maps of a video backbone into one per image.

:class:`TemporalFusionHead` wraps any mmseg decode head whose ``loss`` and
``predict`` are the stock ``forward -> loss_by_feat / predict_by_feat``
(``DepthwiseSeparableASPPHead``, ``ASPPHead``, ``FCNHead``, ``PSPHead``,
``UPerHead``...). It runs the inner head on the ``[N*T, ...]`` features,
fuses the ``[N*T, K, h, w]`` logits into ``[N, K, h, w]`` at the head's own
resolution, and hands the fused map to the inner head's ``loss_by_feat`` /
``predict_by_feat``. So the inner head's loss, ``align_corners``,
``ignore_index`` and ``num_classes`` keep working and ``EncoderDecoder``,
``IoUMetric`` and the visualiser see one prediction per image.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS as SEG_MODELS
from torch import Tensor

from mmdas.geometry import box_mask, inverse_warp, maps_in_view
from mmdas.policy import check_num_frames
from mmdas.registry import MODELS
from ..wrapping import frames_per_image, inner_cfg, share_inner_head_names

FUSIONS = ('inverse_warp', 'mean')


def _metainfo(sample) -> dict:
    return sample if isinstance(sample, dict) else sample.metainfo


def fuse_frames(seg_logits: Tensor,
                maps: Tensor,
                region: Optional[Tensor] = None) -> Tensor:
    """The ``'inverse_warp'`` fusion of :class:`TemporalFusionHead`.

    Args:
        seg_logits (Tensor): ``[N*T, K, h, w]`` per-frame logits, frame t
            of image n at ``n*T + t``.
        maps (Tensor): ``[N, T, 3, 3]`` forward maps of the frames in the
            normalised coordinates of the logit map.
        region (Tensor, optional): ``[N, 1, h, w]`` pixels of the map that
            hold the image (not padding). Defaults to the whole map.

    Returns:
        Tensor: ``[N, K, h, w]``: per pixel, the mean of the inverse-warped
        logits of the frames valid there, else the plain mean.
    """
    num_images, frames = maps.shape[:2]
    per_image = seg_logits.view(num_images, frames, *seg_logits.shape[1:])
    if region is not None:
        region = region.repeat_interleave(frames, dim=0)
    warped, valid = inverse_warp(
        seg_logits, maps.reshape(-1, 3, 3), region=region)
    warped = warped.view_as(per_image)
    valid = valid.view(num_images, frames, 1,
                       *seg_logits.shape[2:]).to(seg_logits.dtype)
    count = valid.sum(1)
    fused = (warped * valid).sum(1) / count.clamp_min(1)
    return torch.where(count > 0, fused, per_image.mean(1))


@MODELS.register_module()
class TemporalFusionHead(BaseModule):
    """Run an mmseg decode head per frame and fuse the frames' logits.

    Two ways to give the inner head (the second merges with a base config's
    ``decode_head``/``auxiliary_head`` dict, so a config inheriting a stock
    DeepLabV3+ writes only
    ``decode_head=dict(type='TemporalFusionHead',
    wrapped_type='DepthwiseSeparableASPPHead')``):

    * ``TemporalFusionHead(head=dict(type='FCNHead', ...))``
    * ``TemporalFusionHead(wrapped_type='FCNHead', **fcn_head_kwargs)``

    Fusion, on the logits at the head's resolution (before the inner head
    resizes them for its loss or prediction):

    * ``'inverse_warp'`` (default): frame t's logits are warped back with the
      inverse of its forward map (``das_matrices[t]`` of the image's
      metainfo, normalised forward maps of :mod:`mmdas.geometry` relative to
      the image) and averaged over the frames whose logits the pixel's value
      interpolates only from the image (not from outside the frame nor from
      padding). A pixel in no such frame gets the plain mean of the unwarped
      logits (the reference frame covers the whole image, so this happens
      only in the padding). At the head's stride, validity is decided at the
      input's resolution and pooled to the logit grid (see
      :func:`mmdas.geometry.inverse_warp`). Padded batches and crops are handled through
      the metainfo ``das_image_box`` and ``das_input_shape`` (set by the DAS
      data preprocessors) and ``das_view_box`` (set for each crop by
      :class:`~mmdas.models.DASEncoderDecoder`).
    * ``'mean'``: the plain average over frames, as the paper's code does
      (only the reference frame is aligned with the label).

    With one frame per image the logits pass unchanged (no matrices needed),
    so the head is then numerically the inner head.

    Slide inference (``test_cfg.mode='slide'``) with ``'inverse_warp'``
    needs :class:`~mmdas.models.DASEncoderDecoder`, which tells the head
    where each crop lies; mmseg's ``EncoderDecoder`` does not, and the head
    then raises on a crop smaller than the input.

    Args:
        head (dict, optional): Config of the inner decode head.
        wrapped_type (str, optional): Type of the inner head; the remaining
            keyword arguments (including ``init_cfg``) are its arguments.
        fusion (str): ``'inverse_warp'`` or ``'mean'``.
        num_frames (int, optional): Frames per image; checked against the
            number of frames found (feature batch // number of images).
        matrices_key (str): Metainfo key of the ``[T, 3, 3]`` matrices.
            Defaults to ``'das_matrices'``.
    """

    def __init__(self,
                 head: Optional[dict] = None,
                 wrapped_type: Optional[str] = None,
                 fusion: str = 'inverse_warp',
                 num_frames: Optional[int] = None,
                 matrices_key: str = 'das_matrices',
                 **kwargs):
        super().__init__(init_cfg=None)
        if fusion not in FUSIONS:
            raise ValueError(f'fusion: got {fusion!r}; valid choices are '
                             f'{list(FUSIONS)}.')
        if num_frames is not None:
            num_frames = check_num_frames(num_frames,
                                          'TemporalFusionHead.num_frames')
        self.head = SEG_MODELS.build(
            inner_cfg(head, wrapped_type, kwargs, type(self).__name__))
        share_inner_head_names(self)  # 2D checkpoints load as they are
        self.fusion = fusion
        self.num_frames = num_frames
        self.matrices_key = matrices_key

    # What EncoderDecoder, the losses and the visualiser read.
    @property
    def align_corners(self) -> bool:
        return self.head.align_corners

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def out_channels(self) -> int:
        return self.head.out_channels

    @property
    def ignore_index(self) -> int:
        return self.head.ignore_index

    @property
    def threshold(self):
        return self.head.threshold

    @property
    def loss_decode(self):
        return self.head.loss_decode

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get('_modules', {})
            if name.startswith('__') or 'head' not in modules:
                raise
            return getattr(modules['head'], name)

    def forward(self, inputs: Tuple[Tensor]) -> Tensor:
        """Per-frame logits ``[N*T, K, h, w]`` of the inner head (unfused:
        fusing needs the images' metainfo, see :meth:`fuse`)."""
        return self.head.forward(inputs)

    def fuse(self, seg_logits: Tensor, batch_img_metas: Sequence) -> Tensor:
        """Fuse ``[N*T, K, h, w]`` per-frame logits into ``[N, K, h, w]``.

        Args:
            seg_logits (Tensor): Per-frame logits, frame t of image n at
                ``n*T + t``.
            batch_img_metas (Sequence[dict | SegDataSample]): One per image.

        Returns:
            Tensor: Fused logits.
        """
        num_images = len(batch_img_metas)
        nt = seg_logits.shape[0]
        frames = frames_per_image(nt, num_images, self.num_frames,
                                  type(self).__name__, batch_img_metas)
        per_image = seg_logits.view(num_images, frames,
                                    *seg_logits.shape[1:])
        if frames == 1:
            return per_image[:, 0]
        if self.fusion == 'mean':
            return per_image.mean(1)

        mats = self._matrices(batch_img_metas, frames, seg_logits.device)
        maps, region = self._maps_on_logits(batch_img_metas, mats,
                                            seg_logits.shape[-2:])
        return fuse_frames(seg_logits, maps, region)

    @staticmethod
    def _maps_on_logits(batch_img_metas: Sequence, mats: Tensor,
                        size) -> Tuple[Tensor, Tensor]:
        """The frames' maps in the coordinates of the logit map, and the
        pixels that hold the image (not padding) at the input's resolution:
        validity is decided there (see :func:`mmdas.geometry.inverse_warp`).
        """
        image_boxes, view_boxes = [], []
        known = all(
            _metainfo(s).get('das_image_box') is not None
            and _metainfo(s).get('das_input_shape') is not None
            for s in batch_img_metas)
        for sample in batch_img_metas:
            info = _metainfo(sample)
            if not known:
                # no padding information: the map is the image
                image_boxes.append((0, 0, size[1], size[0]))
                view_boxes.append((0, 0, size[1], size[0]))
                continue
            shape = info['das_input_shape']
            image_boxes.append(tuple(info['das_image_box']))
            view_boxes.append(
                tuple(info.get('das_view_box') or (0, 0, shape[1], shape[0])))
        views = {(int(y1 - y0), int(x1 - x0)) for x0, y0, x1, y1 in view_boxes}
        if len(views) != 1:
            raise ValueError(
                f'TemporalFusionHead: the logit maps of one batch cover '
                f'views of different sizes {sorted(views)} (das_view_box / '
                'das_input_shape); a batch shares one input size.')
        fine = views.pop()
        if fine[0] < size[0] or fine[1] < size[1]:
            fine = tuple(size)  # logits finer than the input: decide there
            view_boxes = [(0, 0, size[1], size[0])] * len(view_boxes) \
                if not known else view_boxes
        maps = maps_in_view(mats, image_boxes, view_boxes)
        region = box_mask(image_boxes, view_boxes, fine, mats.device)
        return maps, region

    def _matrices(self, batch_img_metas: Sequence, frames: int,
                  device) -> Tensor:
        mats = []
        for i, sample in enumerate(batch_img_metas):
            info = _metainfo(sample)
            if self.matrices_key not in info:
                raise KeyError(
                    f"{type(self).__name__}: fusion='inverse_warp' needs the "
                    f"per-frame matrices in each image's metainfo key "
                    f"'{self.matrices_key}' (image {i} has none). Make the "
                    'frames with a DAS data preprocessor or the '
                    "DASImageToVideo transform, or set fusion='mean'.")
            m = info[self.matrices_key]
            m = torch.from_numpy(np.asarray(m)) if not isinstance(
                m, Tensor) else m
            if tuple(m.shape) != (frames, 3, 3):
                raise ValueError(
                    f"{type(self).__name__}: '{self.matrices_key}' of image "
                    f'{i} has shape {tuple(m.shape)}, expected ({frames}, 3, '
                    '3) for the frames the backbone produced.')
            mats.append(m.to(device=device, dtype=torch.float32))
        return torch.stack(mats)

    def _check_crop_is_known(self, batch_img_metas: Sequence) -> None:
        """Refuse a slide-inference crop whose position is unknown."""
        info = _metainfo(batch_img_metas[0])
        img_shape = info.get('img_shape')
        if (self.fusion != 'inverse_warp'
                or not isinstance(img_shape, torch.Size)
                or info.get('das_view_box') is not None
                or self.matrices_key not in info
                or info.get('das_num_frames') == 1):
            return  # mmseg marks slide crops by a torch.Size img_shape
        whole = info.get('das_input_shape')
        if whole is not None and tuple(whole) == tuple(img_shape):
            return  # the crop is the whole input
        raise ValueError(
            f"{type(self).__name__}: fusion='inverse_warp' cannot decode a "
            f'slide-inference crop of shape {tuple(img_shape)} of an input '
            f'of shape {whole}: mmseg\'s EncoderDecoder does not say where '
            "the crop lies. Use model=dict(type='DASEncoderDecoder', ...) "
            "(a drop-in for EncoderDecoder that does), or set "
            "fusion='mean'.")

    def loss(self, inputs: Tuple[Tensor], batch_data_samples: Sequence,
             train_cfg) -> dict:
        """Fuse the frames, then the inner head's ``loss_by_feat``."""
        seg_logits = self.fuse(self.forward(inputs), batch_data_samples)
        return self.head.loss_by_feat(seg_logits, batch_data_samples)

    def predict(self, inputs: Tuple[Tensor], batch_img_metas: List[dict],
                test_cfg) -> Tensor:
        """Fuse the frames, then the inner head's ``predict_by_feat``."""
        self._check_crop_is_known(batch_img_metas)
        seg_logits = self.fuse(self.forward(inputs), batch_img_metas)
        return self.head.predict_by_feat(seg_logits, batch_img_metas)

