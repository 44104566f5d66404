"""Average per-frame class scores over the T frames of each image."""
from typing import List, Optional, Tuple

from mmengine.model import BaseModule
from mmpretrain.registry import MODELS as CLS_MODELS
from torch import Tensor

from mmdas.policy import check_num_frames
from mmdas.registry import MODELS
from ..wrapping import frames_per_image, inner_cfg, share_inner_head_names


@MODELS.register_module()
class TemporalAvgClsHead(BaseModule):
    """Run an mmpretrain classification head per frame and average the
    logits over frames (TSN's average consensus, as the paper's code does).

    A head rather than a neck: averaging *logits* is what the paper's code
    feeds to the cross-entropy, and it is right for any head (for a linear
    head it equals averaging pooled features; for ``StackedLinearClsHead``
    or ``VisionTransformerClsHead`` it does not). The fused ``[N, K]`` scores
    go to the inner head's ``_get_loss`` / ``_get_predictions``, so its loss,
    ``topk``, ``cal_acc`` and mixup ``gt_score`` keep working and
    ``Accuracy`` sees one prediction per image.

    Supports heads built on mmpretrain's ``ClsHead`` (``LinearClsHead``,
    ``StackedLinearClsHead``, ``VisionTransformerClsHead``...).

    The inner head's parameters keep the 2D names in state dicts
    (``head.fc.weight``, as in the 2D classifier; see
    :func:`~mmdas.models.wrapping.share_inner_head_names`), so a stock
    classifier checkpoint loads with ``load_from``.

    Args:
        head (dict, optional): Config of the inner head.
        wrapped_type (str, optional): Type of the inner head; the remaining
            keyword arguments are its arguments (merge-friendly form).
        num_frames (int, optional): Frames per image. Needed only where no
            data samples tell the number of images (``mode='tensor'`` or
            ``predict`` without data samples); checked otherwise.
    """

    def __init__(self,
                 head: Optional[dict] = None,
                 wrapped_type: Optional[str] = None,
                 num_frames: Optional[int] = None,
                 **kwargs):
        super().__init__(init_cfg=None)
        if num_frames is not None:
            num_frames = check_num_frames(num_frames,
                                          'TemporalAvgClsHead.num_frames')
        self.head = CLS_MODELS.build(
            inner_cfg(head, wrapped_type, kwargs, type(self).__name__))
        self.num_frames = num_frames
        share_inner_head_names(self)

    def pre_logits(self, feats: Tuple[Tensor]) -> Tensor:
        """Per-frame pre-logits of the inner head (``[N*T, ...]``)."""
        return self.head.pre_logits(feats)

    def forward(self,
                feats: Tuple[Tensor],
                num_images: Optional[int] = None,
                data_samples: Optional[List] = None) -> Tensor:
        """Per-frame scores of the inner head averaged to ``[N, K]``.

        ``data_samples`` (optional) are checked for their ``das_num_frames``.
        """
        scores = self.head(feats)
        if num_images is None:
            if self.num_frames is None:
                raise ValueError(
                    f'{type(self).__name__}: without data samples the number '
                    'of images is unknown; set num_frames in the head.')
            num_images = scores.shape[0] // self.num_frames
        frames = frames_per_image(scores.shape[0], num_images,
                                  self.num_frames, type(self).__name__,
                                  data_samples)
        return scores.view(num_images, frames, *scores.shape[1:]).mean(1)

    def loss(self, feats: Tuple[Tensor], data_samples: List, **kwargs) -> dict:
        """Average over frames, then the inner head's loss."""
        scores = self(feats, len(data_samples), data_samples)
        return self.head._get_loss(scores, data_samples, **kwargs)

    def predict(self,
                feats: Tuple[Tensor],
                data_samples: Optional[List] = None) -> List:
        """Average over frames, then the inner head's predictions."""
        num_images = None if data_samples is None else len(data_samples)
        scores = self(feats, num_images, data_samples)
        return self.head._get_predictions(scores, data_samples)
