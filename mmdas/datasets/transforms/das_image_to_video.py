"""Pipeline transform: one image (and its label map) to a T-frame DAS video."""
from typing import Dict, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmdas.geometry import warp
from mmdas.policy import DASPolicy, build_policy
from mmdas.registry import TRANSFORMS
from mmdas.video import DAS_META_KEYS, warp_frames

#: ``PackSegInputs`` meta keys (mmseg 1.2.2 defaults) plus the DAS keys.
DAS_SEG_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                     'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                     'reduce_zero_label') + DAS_META_KEYS
#: ``PackInputs`` meta keys (mmpretrain 1.2.0 defaults) plus the DAS keys.
DAS_CLS_META_KEYS = ('sample_idx', 'img_path', 'ori_shape', 'img_shape',
                     'scale_factor', 'flip', 'flip_direction') + DAS_META_KEYS


@TRANSFORMS.register_module()
class DASImageToVideo(BaseTransform):
    """Turn an image into a T-frame video with a fixed DAS policy (CPU).

    This is the CPU path, for visualisation, tests and CPU-bound pipelines;
    training on a GPU should rather generate frames on the device with
    :class:`~mmdas.models.DASSegDataPreProcessor` /
    :class:`~mmdas.models.DASClsDataPreprocessor`, which give the same frames.

    Frames are stacked frame-major along the channels, ``(H, W, T*C)``, so
    that the stock ``PackSegInputs`` / ``PackInputs`` pack them as
    ``[T*C, H, W]``. Put this transform after ``PhotoMetricDistortion``
    (which needs 3 channels) and after every geometric transform, and let the
    data preprocessor normalise (it does so frame by frame when it is given
    neither ``policy`` nor ``cell``).

    Images are interpolated bilinearly, with black (0) outside the image.
    Label maps use nearest neighbour and ``ignore_index`` outside the image,
    so no label value is invented.

    Required keys: ``img``. Optional: ``gt_seg_map``.

    Modified keys: ``img`` becomes float32 ``(H, W, T*C)``.

    Added keys:

    - ``gt_seg_map_frames``: ``(T, H, W)`` warped label maps (only with
      ``gt_seg_map``). ``gt_seg_map`` itself stays the original map: the
      fused prediction is scored against the untransformed image.
    - ``das_matrices``: float32 ``(T, 3, 3)`` forward maps of the frames in
      the image's normalised coordinates (:mod:`mmdas.geometry`), for the
      inverse warp. They stay right when the data preprocessor pads the
      batch: it records where the image lies (``das_image_box``).
    - ``das_num_frames`` (int) and ``das_reference_frame`` (int, the frame
      that is the unchanged image).
    - ``das_matrices_for``: what the matrices were made for, ``dict(
      img_shape=(H, W), flip=..., flip_direction=...)``. The DAS data
      preprocessor refuses frames whose image has since changed size or flip
      state: a geometric transform after this one (``RandomFlip``,
      ``RandomCrop``, ``Resize``, a plain ``Pad``, a TTA flip) leaves the
      matrices stale and the inverse warp misaligned.

    Padding: put :class:`~mmdas.datasets.DASPad` after this transform, not
    ``Pad`` before it (a padded image would turn about the canvas centre).

    ``PackSegInputs`` / ``PackInputs`` drop metainfo keys they are not told
    about: use ``PackDASSegInputs`` / ``PackDASInputs``, or give them
    ``meta_keys`` :data:`DAS_SEG_META_KEYS` / :data:`DAS_CLS_META_KEYS`.

    Args:
        policy (dict | str | DASPolicy): ``dict(transforms=[dict(op=...,
            magnitude=...)], num_frames=8, profile='symmetric')`` (or
            ``'pingpong'``, ``'forward'``), the path of
            a policy JSON file, or a :class:`~mmdas.policy.DASPolicy`.
        ignore_index (int): Label of pixels that come from outside the image.
            Defaults to 255.
    """

    def __init__(self,
                 policy: Union[Dict, str, DASPolicy],
                 ignore_index: int = 255):
        self.policy = build_policy(policy, field='DASImageToVideo.policy')
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        if 'pad_shape' in results or 'das_image_shape' in results:
            raise ValueError(
                'DASImageToVideo: the image was padded earlier in the '
                f"pipeline (pad_shape={results.get('pad_shape')}), so its "
                'frames would turn about the padded canvas and count the '
                'padding as image. Pad after DASImageToVideo, with '
                "dict(type='DASPad', ...) (mmcv's Pad arguments).")
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        height, width, channels = img.shape
        num_frames = self.policy.num_frames
        mats = self.policy.matrices(height, width)

        # bilinear warp of a uint8 image is fractional: keep float32
        image = torch.from_numpy(np.ascontiguousarray(img, np.float32))
        image = image.permute(2, 0, 1)[None, None]  # [1, 1, C, H, W]
        frames = warp_frames(
            image.expand(-1, num_frames, -1, -1, -1), mats)[0]
        # (T, C, H, W) -> (H, W, T*C), frame-major along channels
        results['img'] = frames.permute(2, 3, 0, 1).reshape(
            height, width, num_frames * channels).numpy()

        if 'gt_seg_map' in results:
            seg = results['gt_seg_map']
            labels = torch.from_numpy(np.ascontiguousarray(seg))
            labels = labels[None, None].expand(num_frames, 1, -1, -1)
            warped = warp(labels, mats, mode='nearest',
                          fill=self.ignore_index)
            results['gt_seg_map_frames'] = warped[:, 0].numpy().astype(
                seg.dtype, copy=False)

        results['das_matrices'] = mats.numpy()
        results['das_num_frames'] = num_frames
        results['das_reference_frame'] = self.policy.reference_frame
        flip = bool(results.get('flip', False))
        results['das_matrices_for'] = dict(
            img_shape=(height, width),
            flip=flip,
            flip_direction=results.get('flip_direction') if flip else None)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(policy={self.policy!r}, '
                f'ignore_index={self.ignore_index})')
