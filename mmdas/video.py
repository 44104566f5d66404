"""The layout in which a DAS video crosses the model interface.

mmseg's ``EncoderDecoder`` (slide inference, padding, one data sample per
image) and mmpretrain's classifiers only work when dim 0 of ``inputs`` is the
number of images N. A T-frame video therefore travels **frame-major along the
channels**: ``[N, T*C, H, W]`` where frame ``t`` is channels
``t*C:(t+1)*C``. The backbone unfolds it to ``[N*T, C, H, W]``.
"""
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .geometry import box_mask, maps_in_view, warp

__all__ = ['stack_frames', 'unstack_frames', 'warp_frames', 'DAS_META_KEYS']

#: Metainfo keys that carry a DAS video's geometry; add them to the
#: ``meta_keys`` of ``PackSegInputs`` / ``PackInputs`` (see
#: :mod:`mmdas.datasets.transforms`).
#: ``das_matrices_for`` records the image the matrices were made for (see
#: :class:`~mmdas.datasets.DASImageToVideo`), ``das_image_shape`` the size of
#: an image that :class:`~mmdas.datasets.DASPad` padded.
DAS_META_KEYS = ('das_matrices', 'das_num_frames', 'das_reference_frame',
                 'das_matrices_for', 'das_image_shape')


def stack_frames(frames: Tensor) -> Tensor:
    """``[N, T, C, H, W]`` frames to the interface layout ``[N, T*C, H, W]``.

    Args:
        frames (Tensor): ``[N, T, C, H, W]`` video.

    Returns:
        Tensor: ``[N, T*C, H, W]``, frame-major (a view when possible).
    """
    if frames.dim() != 5:
        raise ValueError('stack_frames expects [N, T, C, H, W] frames, got '
                         f'shape {tuple(frames.shape)}.')
    n, t, c, h, w = frames.shape
    return frames.reshape(n, t * c, h, w)


def unstack_frames(inputs: Tensor, num_frames: int) -> Tensor:
    """Interface layout ``[N, T*C, H, W]`` to ``[N*T, C, H, W]``.

    Args:
        inputs (Tensor): ``[N, T*C, H, W]`` frame-major video.
        num_frames (int): T.

    Returns:
        Tensor: ``[N*T, C, H, W]``; rows ``n*T:(n+1)*T`` are image n's
        frames in order.
    """
    if inputs.dim() != 4:
        raise ValueError('unstack_frames expects [N, T*C, H, W] inputs, got '
                         f'shape {tuple(inputs.shape)}.')
    n, tc, h, w = inputs.shape
    if num_frames < 1 or tc % num_frames:
        raise ValueError(
            f'unstack_frames: {tc} input channels cannot hold num_frames='
            f'{num_frames} '
            f'frames; the DAS layout is [N, T*C, H, W] (frames stacked along '
            f'channels), so channels must be a multiple of T. Is the DAS '
            f'transform or data preprocessor missing from the config, or does '
            f'num_frames differ between them and the backbone?')
    return inputs.reshape(n * num_frames, tc // num_frames, h, w)


def warp_frames(frames: Tensor,
                mats: Tensor,
                background: Optional[Union[float, Tensor]] = None,
                image_boxes: Optional[Union[Tensor, Sequence]] = None
                ) -> Tensor:
    """Warp every frame of a batch of videos with its own map, in one call.

    This is the batched frame generator shared by the CPU transform, the
    on-device preprocessors and :class:`~mmdas.models.DASCell`: one
    ``grid_sample`` over all ``N * T`` frames, no Python loop over frames.

    Pixels that come from outside the image take the value ``background``
    (blended bilinearly at the border, exactly as ``grid_sample``'s zero
    padding does for 0). Warping normalised images with ``background`` set to
    the normalised value of a black pixel therefore gives the same frames as
    warping the raw image with zero fill and normalising afterwards.

    Padded batches (``image_boxes``): the maps are relative to each image,
    which turns about its own centre, and the frames are those of the
    unpadded image, padded afterwards: the padding counts as outside the
    image (``background``), and the padded border keeps the input's values
    (the padding). So they equal the frames of ``DASImageToVideo`` padded by
    the data preprocessor.

    Args:
        frames (Tensor): ``[N, T, C, H, W]`` frames (an expanded view such as
            ``img[:, None].expand(-1, T, -1, -1, -1)`` is fine).
        mats (Tensor): ``[T, 3, 3]`` forward maps shared by the batch, or
            ``[N, T, 3, 3]`` (normalised coordinates, see
            :mod:`mmdas.geometry`).
        background (float | Tensor, optional): Fill value, a scalar or one
            value per channel ``[C]``. Defaults to 0.
        image_boxes (Tensor | Sequence, optional): ``[N, 4]`` box
            ``(x0, y0, x1, y1)`` of each image on the ``H x W`` canvas, in
            pixels. Defaults to the whole canvas.

    Returns:
        Tensor: ``[N, T, C, H, W]``. Frames whose map is exactly the identity
        are bit-exact copies of the input frames.
    """
    n, t, c, h, w = frames.shape
    if mats.dim() == 3:
        mats = mats.unsqueeze(0).expand(n, -1, -1, -1)
    if tuple(mats.shape) != (n, t, 3, 3):
        raise ValueError(f'warp_frames: maps of shape {tuple(mats.shape)} do '
                         f'not fit {t} frames of {n} videos.')
    inside = None
    if image_boxes is not None:
        canvas = (0, 0, w, h)
        mats = maps_in_view(mats, image_boxes, canvas)
        inside = box_mask(image_boxes, canvas, (h, w), frames.device)
        inside = inside.unsqueeze(1)  # [N, 1, 1, H, W]
    bg = torch.as_tensor(
        0.0 if background is None else background,
        dtype=frames.dtype, device=frames.device)
    bg = bg.reshape(-1, 1, 1) if bg.dim() else bg
    # a repeated image (expanded view): shift it once, copy once
    source = frames[:, :1] if frames.stride(1) == 0 else frames
    shifted = source - bg
    if inside is not None:
        shifted = shifted * inside  # padding is outside the image
    shifted = shifted.expand(n, t, c, h, w)
    out = warp(shifted.reshape(n * t, c, h, w), mats.reshape(n * t, 3, 3))
    out = out.view(n, t, c, h, w).add_(bg)
    if inside is not None:
        out = torch.where(inside, out, frames)
    # (x - bg) + bg is not bit-exact: put identity frames back untouched
    eye = torch.eye(3, dtype=mats.dtype, device=mats.device)
    ident = (mats == eye).flatten(2).all(dim=2)  # [N, T]
    # a select, not a branch on the data: an exported graph keeps it
    return torch.where(ident[:, :, None, None, None], frames, out)
