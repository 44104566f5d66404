"""One exportable graph from an image batch to the model's prediction.

mmseg's and mmdeploy's export call ``model(inputs, mode='tensor')``; for a
DAS model that takes frames already made (``[N, T*3, H, W]``) and returns T
unfused per-frame maps. :class:`ImageToPrediction` wraps a built DAS
segmentor or classifier (or its 2D twin) so that one graph runs what
``inference`` runs, from the raw image batch:

1. BGR->RGB (if the config's preprocessor converts) and mean/std
   normalisation, from the model's own data preprocessor;
2. the DAS frames: the policy's maps for the input's size (computed in the
   graph, so a graph exported with dynamic height and width stays right on
   other aspect ratios) and one ``grid_sample``
   (:func:`mmdas.video.warp_frames`);
3. the (video) backbone with its temporal module, the neck and the head;
4. segmentation: the fusion of :class:`~mmdas.models.TemporalFusionHead`
   (:func:`~mmdas.models.decode_heads.temporal_fusion_head.fuse_frames`
   or the mean) and the resize to the input size, as ``predict_by_feat``
   does; classification: the frames' mean score
   (:class:`~mmdas.models.TemporalAvgClsHead`).

Input: ``[N, 3, H, W]`` float, 0-255, in the channel order the config's
pipeline loads (BGR for mmcv's loaders; the graph converts as the
preprocessor does). Output: ``[N, K, H, W]`` fused logits (segmentation),
``[N, K]`` class scores before softmax (classification).

Only the fixed-policy case is exportable: a search model (a ``DASCell``) is
refused with the ``--cfg-options`` that give its selected policy.
:func:`export_onnx` exports with ``torch.onnx.export(dynamo=True)`` and
decomposes the 3x3 ``linalg.inv`` of the maps (ONNX has no matrix inverse).
"""
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from mmdas.geometry import op_matrices
from mmdas.models.decode_heads.temporal_fusion_head import (
    TemporalFusionHead, fuse_frames)
from mmdas.models.heads import TemporalAvgClsHead
from mmdas.video import stack_frames, warp_frames

__all__ = [
    'ImageToPrediction', 'export_onnx', 'reference_outputs', 'parity',
    'check_parity', 'inverse_3x3', 'maps_for_size', 'square_op_maps'
]


def inverse_3x3(mats: Tensor) -> Tensor:
    """Inverse of ``[..., 3, 3]`` matrices by cofactors (plain tensor ops).

    ONNX has no matrix inverse; the exporter replaces ``torch.linalg.inv``
    of the DAS maps with this.
    """
    if tuple(mats.shape[-2:]) != (3, 3):
        raise ValueError(f'inverse_3x3: expected [..., 3, 3] matrices, got '
                         f'shape {tuple(mats.shape)}.')
    a, b, c = mats[..., 0, 0], mats[..., 0, 1], mats[..., 0, 2]
    d, e, f = mats[..., 1, 0], mats[..., 1, 1], mats[..., 1, 2]
    g, h, i = mats[..., 2, 0], mats[..., 2, 1], mats[..., 2, 2]
    cof = torch.stack([
        e * i - f * h, c * h - b * i, b * f - c * e,
        f * g - d * i, a * i - c * g, c * d - a * f,
        d * h - e * g, b * g - a * h, a * e - b * d
    ], -1)
    det = a * cof[..., 0] + b * cof[..., 3] + c * cof[..., 6]
    return (cof / det[..., None]).reshape(mats.shape)


def square_op_maps(policy) -> Tensor:
    """``[P, T, 3, 3]``: each of the policy's P ops' maps on a square
    image, in order."""
    offsets = policy.offsets()
    return torch.stack([
        op_matrices(t['op'], t['magnitude'], offsets, 1, 1)
        for t in policy.transforms
    ]).float()


def maps_for_size(square_maps: Tensor, height, width) -> Tensor:
    """``[T, 3, 3]`` policy maps for an image of ``height x width`` from
    :func:`square_op_maps`, with tensor ops only (the sizes may be
    symbolic in an exported graph).

    In normalised coordinates an op's map depends on the size only through
    the aspect ratio: :func:`mmdas.geometry.op_matrices` conjugates its
    centred pixel map by ``diag(2/w, 2/h, 1)``, which scales entry (0, 1)
    by ``h/w`` and (1, 0) by ``w/h``; translations are a fraction of the
    size, the same in normalised units. The ops compose as in
    :func:`mmdas.geometry.policy_matrices` (the first op first).
    :meth:`ImageToPrediction.check_maps` compares the result with
    :meth:`DASPolicy.matrices` before every export.
    """
    one = square_maps.new_ones(())
    ratio = one * height / width
    scale = torch.stack([
        torch.stack([one, ratio, one]),
        torch.stack([1 / ratio, one, one]),
        torch.stack([one, one, one])
    ])
    mats = torch.eye(
        3, dtype=square_maps.dtype, device=square_maps.device).expand(
            square_maps.shape[1], 3, 3)
    for step in square_maps * scale:  # a few ops, not frames
        mats = step @ mats
    return mats


def _is_segmentor(model: nn.Module) -> bool:
    from mmseg.models import BaseSegmentor
    return isinstance(model, BaseSegmentor)


class ImageToPrediction(nn.Module):
    """A DAS (or 2D) model as one graph: raw images to its prediction.

    Args:
        model (nn.Module): A built mmseg segmentor (``EncoderDecoder`` /
            ``DASEncoderDecoder``) or mmpretrain ``ImageClassifier``, in
            eval mode, with its checkpoint loaded.

    Raises:
        ValueError: For what the graph cannot reproduce, naming the config
            field and the fix: a ``DASCell`` (search) or frames made by the
            pipeline, slide inference, test-time padding, a preprocessor
            without 3-channel normalisation.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.task = 'seg' if _is_segmentor(model) else 'cls'
        pre = model.data_preprocessor
        field = 'model.data_preprocessor'
        if getattr(pre, 'cell', None) is not None:
            raise ValueError(
                f'{field}.cell: a DASCell (a search model) mixes transforms '
                'and cannot be exported. Export the training config with the '
                'policy the search selected: `python tools/deployment/'
                'pytorch2onnx.py configs/das_<task>.py CHECKPOINT --cfg-'
                'options model.data_preprocessor.policy=work_dirs/'
                'das_search_<task>/policy.json` (docs/das_search.md).')
        self.policy = getattr(pre, 'policy', None)
        if self.policy is None and getattr(pre, 'num_frames', None):
            raise ValueError(
                f'{field}: frames come from the pipeline (DASImageToVideo), '
                'outside the model. Export with the same policy made in the '
                f'model: --cfg-options {field}.policy=POLICY.json (or the '
                "transform's policy dict).")
        mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
        if not getattr(pre, '_enable_normalize', False) or mean.numel() != 3:
            raise ValueError(
                f'{field}: the exporter needs 3-channel mean/std '
                'normalisation in the data preprocessor.')
        if getattr(pre, 'test_cfg', None):
            raise ValueError(
                f'{field}.test_cfg={pre.test_cfg}: test-time padding is not '
                'in the exported graph; pad the images before the model or '
                f'set --cfg-options {field}.test_cfg=None.')
        self.flip = bool(
            getattr(pre, 'channel_conversion', getattr(pre, 'to_rgb', False)))
        self.register_buffer('mean', mean.detach().reshape(1, 3, 1, 1))
        self.register_buffer('std', std.detach().reshape(1, 3, 1, 1))
        if self.policy is not None:
            # each op's maps on a square image; other sizes follow from the
            # aspect ratio in the graph (see das_maps)
            self.register_buffer('square_maps', square_op_maps(self.policy))
        if self.task == 'seg':
            mode = model.test_cfg.get('mode', 'whole')
            if mode != 'whole':
                raise ValueError(
                    f"model.test_cfg.mode={mode!r}: the exported graph runs "
                    "whole-image inference; set --cfg-options "
                    "model.test_cfg.mode=whole.")

    @property
    def num_frames(self) -> int:
        """T, 1 for a 2D model."""
        return 1 if self.policy is None else self.policy.num_frames

    def das_maps(self, height, width) -> Tensor:
        """``[T, 3, 3]`` maps of the policy for ``height x width`` input,
        in the graph (:func:`maps_for_size`)."""
        return maps_for_size(self.square_maps, height, width)

    def check_maps(self, height: int, width: int) -> None:
        """Raise if :meth:`das_maps` differs from the policy's maps."""
        if self.policy is None:
            return
        ours = self.das_maps(height, width)
        theirs = self.policy.matrices(height, width, ours.device)
        if not torch.allclose(ours, theirs, atol=1e-6):
            raise RuntimeError(
                f'ImageToPrediction.das_maps differ from the policy '
                f'{self.policy} at {height}x{width} by '
                f'{float((ours - theirs).abs().max()):.3g}: an op depends on '
                'the image size in a way the exported graph does not follow.')

    def forward(self, images: Tensor) -> Tensor:
        """``[N, 3, H, W]`` raw images to ``[N, K, H, W]`` logits or
        ``[N, K]`` scores."""
        x = images.float()
        if self.flip:
            x = x.flip(1)
        x = (x - self.mean) / self.std
        num_images, _, height, width = x.shape
        maps = None
        if self.policy is not None:
            maps = self.das_maps(height, width)
            background = (-self.mean / self.std).reshape(3)
            frames = warp_frames(
                x.unsqueeze(1).expand(-1, self.num_frames, -1, -1, -1), maps,
                background)
            x = stack_frames(frames)
        feats = self.model.extract_feat(x)
        if self.task == 'cls':
            return self._scores(feats, num_images)
        return self._seg_logits(feats, maps, num_images, (height, width))

    def _scores(self, feats, num_images) -> Tensor:
        head = self.model.head
        if isinstance(head, TemporalAvgClsHead):
            return head(feats, num_images)
        return head(feats)

    def _seg_logits(self, feats, maps, num_images, size) -> Tensor:
        from mmseg.models.utils import resize
        head = self.model.decode_head
        logits = head.forward(feats)
        if isinstance(head, TemporalFusionHead) and maps is not None:
            if head.fusion == 'mean':
                logits = logits.view(num_images, self.num_frames,
                                     *logits.shape[1:]).mean(1)
            else:
                # the whole input is image: validity decided at the input's
                # resolution and pooled to the logit grid, as the head does
                region = logits.new_ones((num_images, 1) + tuple(size))
                logits = fuse_frames(
                    logits, maps.expand(num_images, -1, -1, -1), region)
        return resize(logits, size=size, mode='bilinear',
                      align_corners=head.align_corners)


def _dataset_meta_samples(model, images: Tensor) -> list:
    """One data sample per image, as a test pipeline of that size packs."""
    height, width = images.shape[-2:]
    # no pad_shape: a test pipeline that does not pad packs none (a pipeline
    # pad_shape would be taken for a plain Pad and refused)
    meta = dict(img_shape=(height, width), ori_shape=(height, width),
                scale_factor=(1.0, 1.0))
    if _is_segmentor(model):
        from mmseg.structures import SegDataSample
        return [SegDataSample(metainfo=dict(meta)) for _ in images]
    from mmpretrain.structures import DataSample
    return [DataSample(metainfo=dict(meta)) for _ in images]


@torch.no_grad()
def reference_outputs(model: nn.Module, images: Tensor) -> Tensor:
    """What PyTorch's own inference gives for the raw ``images``.

    The model's data preprocessor, then ``inference`` (segmentation: fused
    logits at the input size) or the head's frame-mean scores before
    softmax, as the classifier's ``predict`` computes them.
    """
    data = dict(inputs=list(images), data_samples=_dataset_meta_samples(
        model, images))
    data = model.data_preprocessor(data, False)
    samples = data['data_samples']
    if _is_segmentor(model):
        return model.inference(data['inputs'],
                               [s.metainfo for s in samples])
    feats = model.extract_feat(data['inputs'])
    if isinstance(model.head, TemporalAvgClsHead):
        return model.head(feats, len(samples), samples)
    return model.head(feats)


def export_onnx(wrapper: ImageToPrediction,
                example: Tensor,
                out: str,
                opset: int = 18,
                dynamic: bool = False) -> None:
    """Export ``wrapper`` to ONNX with torch's dynamo exporter.

    Args:
        wrapper (ImageToPrediction): The graph to export.
        example (Tensor): ``[N, 3, H, W]`` example images.
        out (str): Path of the ``.onnx`` file.
        opset (int): ONNX opset (>= 16 for ``GridSample``).
        dynamic (bool): Batch, height and width dynamic. Defaults to False
            (the example's shape).
    """
    if opset < 16:
        raise ValueError(f'--opset {opset}: DAS frames and fusion need '
                         'ONNX GridSample, opset >= 16.')
    wrapper.check_maps(*example.shape[-2:])
    dynamic_shapes = None
    if dynamic:
        # AUTO: the exporter keeps each size dynamic in the range the model
        # allows (e.g. more than 32 pixels for a stride-32 map of more than
        # one pixel); a size it must fix would fail the second-size check
        auto = torch.export.Dim.AUTO
        dynamic_shapes = ({0: auto, 2: auto, 3: auto}, )
    with torch.no_grad():
        program = torch.export.export(
            wrapper, (example, ), dynamic_shapes=dynamic_shapes)
        program = program.run_decompositions(
            {torch.ops.aten.linalg_inv.default: inverse_3x3})
        torch.onnx.export(
            program, (example, ), out, opset_version=opset, dynamo=True,
            input_names=['images'],
            output_names=['logits' if wrapper.task == 'seg' else 'scores'],
            verbose=False)


def parity(reference: Tensor, exported: np.ndarray) -> Dict[str, float]:
    """Max absolute difference and argmax agreement (over classes).

    Returns:
        dict: ``max_abs_diff`` and ``argmax_agreement`` (fraction of pixels,
        or of images for scores).
    """
    ref = reference.detach().cpu().numpy()
    if ref.shape != exported.shape:
        raise ValueError(f'parity: PyTorch gives shape {ref.shape}, the '
                         f'exported model {exported.shape}.')
    return dict(
        max_abs_diff=float(np.abs(ref - exported).max()),
        max_abs_logit=float(np.abs(ref).max()),
        argmax_agreement=float(
            (ref.argmax(1) == exported.argmax(1)).mean()))


def time_per_image(run, images, repeats: int = 3) -> float:
    """Best wall time of ``run(images)`` over ``repeats``, per image (s)."""
    run(images)  # warm-up
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        run(images)
        best = min(best, time.perf_counter() - start)
    return best / len(images)


def onnxruntime_session(path: str, threads: Optional[int] = None):
    """A CPU onnxruntime session with ``threads`` intra-op threads."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def run_session(session, images: Tensor) -> np.ndarray:
    """The exported model's output for ``images``."""
    name = session.get_inputs()[0].name
    return session.run(None, {name: images.float().cpu().numpy()})[0]


def second_shape(shape: Sequence[int]) -> Tuple[int, int]:
    """Another input size for a dynamic graph: larger and of another
    aspect ratio (multiples of 8)."""
    height, width = shape
    return (int(round(height * 1.25 / 8)) * 8 or 8,
            int(round(width * 1.5 / 8)) * 8 or 8)


def check_parity(model: nn.Module, session, images: Tensor) -> dict:
    """Parity and per-image latency of the session against PyTorch."""
    reference = reference_outputs(model, images)
    figures = parity(reference, run_session(session, images))
    figures['torch_s_per_image'] = time_per_image(
        lambda x: reference_outputs(model, x), images)
    figures['onnxruntime_s_per_image'] = time_per_image(
        lambda x: run_session(session, x), images)
    figures['shape'] = tuple(images.shape)
    return figures


def format_figures(figures: dict) -> List[str]:
    """Lines that report :func:`check_parity`'s figures."""
    n, _, h, w = figures['shape']
    unit = 'pixels' if figures.get('task') == 'seg' else 'images'
    return [
        f'parity on {n} images of {h}x{w}: max |onnx - torch| = '
        f'{figures["max_abs_diff"]:.3g} (max |torch| '
        f'{figures["max_abs_logit"]:.3g}), same argmax on '
        f'{100 * figures["argmax_agreement"]:.3f}% of {unit}',
        f'latency per image at {h}x{w}: onnxruntime '
        f'{1e3 * figures["onnxruntime_s_per_image"]:.1f} ms, PyTorch '
        f'{1e3 * figures["torch_s_per_image"]:.1f} ms'
    ]
