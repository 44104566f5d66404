"""Pictures of DAS videos and of fused predictions."""
from typing import List

import numpy as np
import torch

#: gap between pictures in a strip, in pixels (white)
GAP = 4


def palette(num: int = 256) -> np.ndarray:
    """A fixed RGB colour per class."""
    return np.random.RandomState(0).randint(40, 256, (num, 3)).astype(np.uint8)


def overlay(frame: np.ndarray, label: np.ndarray, ignore_index: int = 255,
            alpha: float = 0.5, skip_zero: bool = False) -> np.ndarray:
    """Blend class colours over an RGB frame.

    Ignored pixels (and class 0 if ``skip_zero``) keep the frame's colour.
    """
    colours = palette()[label.astype(np.int64) % 256]
    mixed = (1 - alpha) * frame + alpha * colours
    keep = label == ignore_index
    if skip_zero:
        keep |= label == 0
    return np.where(keep[..., None], frame, mixed).round().astype(np.uint8)


def strip(pictures: List[np.ndarray]) -> np.ndarray:
    """Pictures of one size side by side, with white gaps."""
    h, w = pictures[0].shape[:2]
    out = np.full((h, len(pictures) * (w + GAP) - GAP, 3), 255, np.uint8)
    for t, picture in enumerate(pictures):
        out[:, t * (w + GAP):t * (w + GAP) + w] = picture
    return out


def stack_rows(rows: List[np.ndarray]) -> np.ndarray:
    """Strips of one height on top of each other, left-aligned."""
    width = max(r.shape[1] for r in rows)
    padded = [
        np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)),
               constant_values=255) for r in rows
    ]
    return np.concatenate(padded)[:-GAP]


@torch.no_grad()
def das_prediction_picture(model, data_batch: dict) -> np.ndarray:
    """One sample's DAS frames, and its image, label and fused prediction.

    Args:
        model: An mmseg segmentor whose data preprocessor makes DAS frames
            (``DASSegDataPreProcessor``), or a plain 2D segmentor.
        data_batch (dict): A collated batch of one sample, as a dataloader
            gives it (``inputs`` and ``data_samples``).

    Returns:
        np.ndarray: RGB ``uint8`` picture: first row the T frames the model
        saw, second row the image (the reference frame), its label and the
        fused prediction, both blended over the image.
    """
    model.eval()
    preprocessor = model.data_preprocessor
    data = preprocessor(data_batch, False)
    inputs = data['inputs'][0]  # [T*C, H, W], normalised
    mean = preprocessor.mean.view(-1, 1, 1)
    std = preprocessor.std.view(-1, 1, 1)
    channels = mean.shape[0]
    frames = inputs.view(-1, channels, *inputs.shape[-2:]) * std + mean
    frames = frames.clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu()
    frames = [f.numpy() for f in frames]
    if channels == 1:
        frames = [np.repeat(f, 3, axis=-1) for f in frames]

    sample = model.test_step(data_batch)[0]
    meta = sample.metainfo
    h, w = meta['img_shape']
    reference = meta.get('das_reference_frame', len(frames) // 2)
    image = frames[reference if len(frames) > 1 else 0][:h, :w]
    pred = sample.pred_sem_seg.data[0].cpu().numpy()
    # the prediction is at the original image's size; show it at img_shape
    import cv2
    pred = cv2.resize(pred.astype(np.uint8), (w, h),
                      interpolation=cv2.INTER_NEAREST)
    label = sample.gt_sem_seg.data[0].cpu().numpy()
    label = cv2.resize(label.astype(np.uint8), (w, h),
                       interpolation=cv2.INTER_NEAREST)
    bottom = strip([
        image,
        overlay(image, label, skip_zero=True),
        overlay(image, pred, skip_zero=True)
    ])
    top = strip([f[:h, :w] for f in frames])
    return stack_rows([top, bottom])
