"""Pipeline padding that DAS can tell from the image."""
import numpy as np
from mmcv.transforms import Pad

from mmdas.registry import TRANSFORMS


@TRANSFORMS.register_module()
class DASPad(Pad):
    """mmcv's ``Pad`` that records the size of the image it pads.

    mmcv's ``Pad`` (mmseg's VOC pipeline pads every crop with
    ``Pad(size=crop_size)``) overwrites ``img_shape`` with the padded size,
    so nothing downstream can tell the image from the padding: DAS frames
    would turn about the canvas centre and count the padding as image. This
    transform pads exactly as ``Pad`` does (at the bottom and right) and
    writes the unpadded ``(h, w)`` to ``das_image_shape``, which the DAS data
    preprocessors read (packed by ``PackDASSegInputs`` / ``PackDASInputs``)
    to place the image on the network input. A pipeline ``Pad`` in a DAS
    config is refused with a message pointing here.

    It pads the ``T*C`` channels of a video too (after
    :class:`~mmdas.datasets.DASImageToVideo`; OpenCV pads at most 4 channels
    at once, so ``Pad`` fails there), and ``gt_seg_map_frames`` (made by
    :class:`~mmdas.datasets.DASImageToVideo`) like ``gt_seg_map``.

    Args:
        **kwargs: ``Pad`` arguments (``size``, ``size_divisor``,
            ``pad_to_square``, ``pad_val``, ``padding_mode``).

    Added keys: ``das_image_shape`` (a ``Pad`` applied twice keeps the
    first, the image's size).
    """

    def _pad_img(self, results: dict) -> None:
        img = results['img']
        if img.ndim != 3 or img.shape[2] <= 4:
            return super()._pad_img(results)
        # a video: pad each 3-channel frame as Pad pads an image
        chunks = [dict(results, img=img[..., c:c + 3])
                  for c in range(0, img.shape[2], 3)]
        for chunk in chunks:
            super()._pad_img(chunk)
        results.update(chunks[0])
        results['img'] = np.concatenate([c['img'] for c in chunks], axis=-1)
        results['pad_shape'] = results['img'].shape

    def transform(self, results: dict) -> dict:
        shape = results.get('das_image_shape',
                            tuple(results['img'].shape[:2]))
        results = super().transform(results)
        results['das_image_shape'] = tuple(int(v) for v in shape)
        frames = results.get('gt_seg_map_frames')
        if frames is not None:
            h, w = results['pad_shape'][:2]
            results['gt_seg_map_frames'] = np.pad(
                frames, ((0, 0), (0, h - frames.shape[1]),
                         (0, w - frames.shape[2])),
                constant_values=self.pad_val.get('seg', 255))
        return results
