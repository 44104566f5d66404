"""Perturbation-based op selection for a searched DAS cell.

After the supernet is trained, DARTS' argmax(α) is a poor guide to which op
matters (Wang et al., "Rethinking Architecture Selection in Differentiable
NAS", ICLR 2021). Perturbation-based selection measures it instead: for an
undecided edge, mask each op in turn (its weight set to 0, the other ops keep
theirs), evaluate the supernet's task metric on held-out data, and keep the
op whose removal hurts most. The edge becomes one-hot, the supernet is tuned
briefly, and the next edge is decided. :class:`PerturbationSelection` runs
that loop on any cell with ``edge_weights``/``set_edge_weights``;
:func:`task_metric` measures accuracy (classification) or pixel accuracy /
mIoU (segmentation) of an mmpretrain or mmseg model.
"""
import random
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from mmengine.dist import all_reduce
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

#: Selection metrics: top-1 accuracy for a classifier, pixel accuracy for a
#: segmentor; mIoU for a segmentor.
CRITERIA = ('accuracy', 'mIoU')
EDGE_ORDERS = ('random', 'sequential')


class PerturbationSelection:
    """Choose one op per edge of a cell by masking ops and measuring drops.

    Args:
        cell: A :class:`~mmdas.models.DASCell` (anything with ``ops``,
            ``num_edges``, ``edge_weights()`` and ``set_edge_weights()``).
        evaluate (Callable[[], float]): The task metric (higher is better)
            of the model with the cell's current edge weights.
        tune (Callable[[], None], optional): Tunes the supernet briefly with
            the current edge weights; called after each decided edge while
            edges remain undecided.
        edge_order (str): ``'random'`` (darts-pt's default) or
            ``'sequential'``. Defaults to ``'random'``.
        seed (int): Seed of the random edge order. Defaults to 0.
        log (Callable[[str], None], optional): Progress messages: one line
            per evaluation (the metric, the drop, how many evaluations are
            left and about how long they take) and one per decided edge.
    """

    def __init__(self,
                 cell,
                 evaluate: Callable[[], float],
                 tune: Optional[Callable[[], None]] = None,
                 edge_order: str = 'random',
                 seed: int = 0,
                 log: Optional[Callable[[str], None]] = None):
        if edge_order not in EDGE_ORDERS:
            raise ValueError(f'edge_order: {edge_order!r}; valid choices are '
                             f'{list(EDGE_ORDERS)}.')
        self.cell = cell
        self.evaluate = evaluate
        self.tune = tune
        self.edge_order = edge_order
        self.seed = seed
        self.log = log or (lambda msg: None)

    def _order(self) -> List[int]:
        edges = list(range(self.cell.num_edges))
        if self.edge_order == 'random':
            random.Random(self.seed).shuffle(edges)
        return edges

    def _timed(self, weights: Tensor) -> float:
        """The metric with the cell on ``weights``."""
        start = time.perf_counter()
        self.cell.set_edge_weights(weights)
        metric = float(self.evaluate())
        self._spent += time.perf_counter() - start
        self._done += 1
        return metric

    def _progress(self, message: str, left: int) -> None:
        """Log a measured metric with the evaluations left and their time
        (at the mean time of the evaluations so far, tuning excluded)."""
        eta = self._spent / self._done * left
        self.log(f'{message} [{self._done} evaluations done, {left} left, '
                 f'about {int(eta // 60)} min {int(eta % 60):02d} s]')

    def run(self) -> dict:
        """Decide every edge.

        Returns:
            dict: ``genotype`` (the kept op of each edge) and ``steps``, one
            record per decided edge: the edge, the metric with nothing
            masked, every op's metric when masked and its drop, and the
            kept op. The cell is left on its own (α) weights.
        """
        ops = self.cell.ops
        current = self.cell.edge_weights().detach().clone().float()
        order = self._order()
        steps = []
        self._done, self._spent = 0, 0.0
        try:
            for n, edge in enumerate(order):
                where = f'edge {edge} ({n + 1} of {len(order)})'
                # masking an absent op changes nothing: it is not measured
                todo = [o for o in range(len(ops)) if current[edge, o] != 0]
                left = 1 + len(todo) + (len(order) - n - 1) * (len(ops) + 1)
                base = self._timed(current)
                self._progress(f'{where}: metric {base:.4f} with nothing '
                               'masked', left - 1)
                masked: Dict[str, dict] = {}
                for k, o in enumerate(todo):
                    weights = current.clone()
                    weights[edge, o] = 0.0
                    metric = self._timed(weights)
                    masked[ops[o]] = dict(
                        metric=metric,
                        drop=base - metric,
                        weight=float(current[edge, o]))
                    self._progress(
                        f'{where}: {ops[o]} masked: metric {metric:.4f}, '
                        f'drop {base - metric:+.4f}', left - 2 - k)
                # the op whose removal hurts most; ties go to the larger α
                kept = max(masked,
                           key=lambda op: (masked[op]['drop'],
                                           masked[op]['weight']))
                current[edge] = 0.0
                current[edge, ops.index(kept)] = 1.0
                steps.append(
                    dict(edge=edge, base_metric=base, masked=masked,
                         kept=kept))
                self.log(f'{where}: metric {base:.4f}; drop when '
                         'masked: ' + ', '.join(
                             f"{op} {m['drop']:+.4f}"
                             for op, m in masked.items()) + f' -> {kept}')
                if self.tune is not None and n + 1 < self.cell.num_edges:
                    self.cell.set_edge_weights(current)
                    self.tune()
        finally:
            self.cell.set_edge_weights(None)
        genotype = [ops[int(i)] for i in current.argmax(-1).tolist()]
        return dict(genotype=genotype, steps=steps)


class _BatchNormTrainMode:
    """Eval mode for the model except BN layers (batch statistics), whose
    running statistics are restored on exit: evaluating the supernet must
    not change it."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.bns = [
            m for m in self.model.modules() if isinstance(m, _BatchNorm)
        ]
        self.saved = [{k: v.clone() for k, v in m.named_buffers()}
                      for m in self.bns]
        self.model.eval()
        for m in self.bns:
            m.train()

    def __exit__(self, *exc):
        for m, saved in zip(self.bns, self.saved):
            for k, v in m.named_buffers():
                v.copy_(saved[k])
        self.model.train(self.was_training)


def _seg_prediction(model, inputs: Tensor, samples) -> Tuple[Tensor, Tensor]:
    """Predicted and true labels ``[N, H, W]`` on the padded batch canvas.

    In training mode (which pads the labels like the images, with the
    preprocessor's ``seg_pad_val``) mmseg stores each image's *unpadded*
    size as ``img_shape`` and its decode head resizes the logits to image
    0's: wrong for every batch the preprocessor padded. The logits are
    resized to the whole canvas instead; the padding's labels are ignored.
    """
    size = tuple(inputs.shape[-2:])
    metas = [dict(s.metainfo, img_shape=size, pad_shape=size)
             for s in samples]
    pred = model.encode_decode(inputs, metas).argmax(1)
    gt = torch.stack([s.gt_sem_seg.data[0] for s in samples])
    if pred.shape != gt.shape:
        raise ValueError(
            f'task_metric: the labels of the batch have shape '
            f'{tuple(gt.shape)}, the predictions {tuple(pred.shape)} (the '
            f'network input is {size}); the data preprocessor must pad the '
            'labels like the images (mmseg does in training mode).')
    return pred, gt


def is_segmentor(model) -> bool:
    """Whether ``model`` is an mmseg ``EncoderDecoder``-like segmentor."""
    return hasattr(model, 'encode_decode') and hasattr(model, 'decode_head')


@torch.no_grad()
def task_metric(model,
                batches: Iterable[dict],
                criterion: str = 'accuracy') -> float:
    """The task metric of ``model`` on ``batches``, in percent, with BN in
    train mode (the supernet's running statistics describe a mixture of
    ops) and summed over all ranks.

    A segmentor is scored on each batch's whole (padded) canvas, where the
    padding's labels are ``ignore_index``: the same pixel accuracy and mIoU
    as mmseg's ``IoUMetric`` (``aAcc``, ``mIoU``) on the unpadded images.

    Args:
        model: An mmseg segmentor or an mmpretrain classifier (unwrapped).
        batches (Iterable[dict]): Collated data batches (a dataloader).
        criterion (str): ``'accuracy'`` (top-1 accuracy, or pixel accuracy
            for a segmentor) or ``'mIoU'`` (segmentor only).
    """
    segmentor = is_segmentor(model)
    if criterion not in CRITERIA or (criterion == 'mIoU' and not segmentor):
        raise ValueError(f'criterion: {criterion!r} is invalid for a '
                         f'{"segmentor" if segmentor else "classifier"}; '
                         'use ' + ("'accuracy' or 'mIoU'" if segmentor else
                                   "'accuracy'") + '.')
    device = next(model.parameters()).device
    num_classes = model.decode_head.num_classes if segmentor else 0
    if segmentor:
        ignore = model.decode_head.ignore_index
        pad = getattr(model.data_preprocessor, 'seg_pad_val', ignore)
        if pad != ignore:
            raise ValueError(
                f'task_metric: the data preprocessor pads labels with '
                f'seg_pad_val={pad}, but the decode head ignores '
                f'ignore_index={ignore}: padded pixels would be scored. Set '
                f'model.data_preprocessor.seg_pad_val={ignore}.')
    # correct, counted, then per-class intersection and union
    stats = torch.zeros(2 + 2 * num_classes, dtype=torch.float64,
                        device=device)
    with _BatchNormTrainMode(model):
        for batch in batches:
            # training=True for a segmentor pads the labels like the images;
            # a classifier's training mode would mix up its labels
            data = model.data_preprocessor(batch, segmentor)
            samples = data['data_samples']
            if segmentor:
                pred, gt = _seg_prediction(model, data['inputs'], samples)
                valid = gt != model.decode_head.ignore_index
                pred, gt = pred[valid], gt[valid].long()
                stats[0] += (pred == gt).sum()
                stats[1] += gt.numel()
                hit = gt[pred == gt]
                inter = torch.bincount(hit, minlength=num_classes)
                area_p = torch.bincount(pred, minlength=num_classes)
                area_g = torch.bincount(gt, minlength=num_classes)
                stats[2:2 + num_classes] += inter[:num_classes]
                stats[2 + num_classes:] += (area_p + area_g -
                                            inter)[:num_classes]
            else:
                out = model(**data, mode='predict')
                pred = torch.cat([s.pred_label.view(-1)[:1] for s in out])
                gt = torch.cat([s.gt_label.view(-1)[:1] for s in out])
                stats[0] += (pred.to(gt) == gt).sum()
                stats[1] += gt.numel()
    all_reduce(stats, op='sum')
    if stats[1] == 0:
        raise ValueError('task_metric: no labelled sample to evaluate on.')
    if criterion == 'accuracy':
        return float(100.0 * stats[0] / stats[1])
    inter, union = stats[2:2 + num_classes], stats[2 + num_classes:]
    present = union > 0
    return float(100.0 * (inter[present] / union[present]).mean())
