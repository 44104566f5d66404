"""Helpers shared by the heads that wrap a stock head and fuse frames."""
from typing import Optional


def frames_per_image(batch: int, num_images: int,
                     num_frames: Optional[int], where: str) -> int:
    """T from the feature batch, checked against a configured ``num_frames``.
    """
    if num_images < 1 or batch % num_images:
        raise ValueError(
            f'{where}: {batch} per-frame outputs cannot be split evenly over '
            f'{num_images} images; the backbone must output N*T frames.')
    frames = batch // num_images
    if num_frames is not None and frames != num_frames:
        raise ValueError(
            f'{where}: got {frames} frames per image ({batch} outputs for '
            f'{num_images} images) but num_frames={num_frames}; set the same '
            'num_frames in the backbone, the head and the DAS transform.')
    return frames


def inner_cfg(head: Optional[dict], wrapped_type: Optional[str],
              kwargs: dict, owner: str) -> dict:
    """Config of the wrapped head from either form (see the wrappers)."""
    if head is not None:
        if wrapped_type is not None or kwargs:
            extra = sorted(kwargs) + (['wrapped_type'] if wrapped_type else [])
            raise ValueError(
                f'{owner}: give the inner head either as head=dict(...) or as '
                'wrapped_type=... plus its arguments, not both (got head and '
                f'{extra}).')
        return dict(head)
    if wrapped_type is None:
        raise ValueError(
            f"{owner}: no inner head; set head=dict(type=...) or "
            "wrapped_type='...' (e.g. wrapped_type='FCNHead').")
    return dict(type=wrapped_type, **kwargs)
