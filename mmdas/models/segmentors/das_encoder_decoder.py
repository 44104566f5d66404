"""mmseg's ``EncoderDecoder`` that tells a DAS fusion head where crops lie."""
from typing import List

import torch.nn.functional as F
from mmseg.models import EncoderDecoder
from torch import Tensor

from mmdas.registry import MODELS


@MODELS.register_module()
class DASEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` whose slide inference passes each crop's box.

    A drop-in for mmseg's ``EncoderDecoder`` (same arguments, same results
    for 2D heads). :class:`~mmdas.models.TemporalFusionHead` inverse-warps
    each frame's logits with maps relative to the image; on a slide-inference
    crop it needs to know where the crop lies on the network input. This
    segmentor puts it in every image's metainfo as ``das_view_box``
    ``(x0, y0, x1, y1)`` (pixels of the input), for each crop of
    ``test_cfg.mode='slide'`` and as the whole input in ``'whole'`` mode.
    mmseg's ``EncoderDecoder`` does not, and the head then refuses crops
    smaller than the input rather than fuse them wrongly. Metainfo without
    ``das_image_box`` / ``das_input_shape`` (frames not made by a DAS data
    preprocessor) gets the whole input as both, so that a crop is placed on
    the image rather than taken for the whole image.
    """

    def whole_inference(self, inputs: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        height, width = inputs.shape[-2:]
        return super().whole_inference(
            inputs, _with_view_box(batch_img_metas, (0, 0, width, height),
                                   (height, width)))

    def slide_inference(self, inputs: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """mmseg's ``slide_inference``, with each crop's box in the
        metainfo."""
        h_stride, w_stride = self.test_cfg.stride
        h_crop, w_crop = self.test_cfg.crop_size
        batch_size, _, h_img, w_img = inputs.size()
        h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
        w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
        preds = inputs.new_zeros((batch_size, self.out_channels, h_img, w_img))
        count_mat = inputs.new_zeros((batch_size, 1, h_img, w_img))
        for h_idx in range(h_grids):
            for w_idx in range(w_grids):
                y2 = min(h_idx * h_stride + h_crop, h_img)
                x2 = min(w_idx * w_stride + w_crop, w_img)
                y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
                crop_img = inputs[:, :, y1:y2, x1:x2]
                metas = _with_view_box(batch_img_metas, (x1, y1, x2, y2),
                                       (h_img, w_img))
                # as in mmseg: a torch.Size img_shape marks a crop
                metas[0]['img_shape'] = crop_img.shape[2:]
                crop_seg_logit = self.encode_decode(crop_img, metas)
                preds += F.pad(crop_seg_logit,
                               (x1, w_img - x2, y1, h_img - y2))
                count_mat[:, :, y1:y2, x1:x2] += 1
        assert (count_mat == 0).sum() == 0
        return preds / count_mat


def _with_view_box(batch_img_metas: List[dict], box,
                   input_shape) -> List[dict]:
    """Copies of the metainfo dicts with ``das_view_box`` set (and the
    input as the image where nothing says where the image lies)."""
    height, width = (int(v) for v in input_shape)
    out = []
    for meta in batch_img_metas:
        meta = dict(meta, das_view_box=tuple(int(v) for v in box))
        if meta.get('das_image_box') is None or meta.get(
                'das_input_shape') is None:
            meta.update(das_image_box=(0, 0, width, height),
                        das_input_shape=(height, width))
        out.append(meta)
    return out
