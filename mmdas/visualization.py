"""Pictures of DAS videos and of fused predictions that explain themselves.

Every picture is a grid of titled panels drawn with matplotlib's Agg canvas
(no display, no pyplot state): each frame says which frame it is, its step
offset and the transform it shows; the image, the ground truth and the fused
prediction are named; label maps come with a legend of the classes. Small
images are upsampled (nearest neighbour) to a readable size.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .geometry import frame_offsets
from .policy import DASPolicy

#: On-screen side of one panel, in inches at :data:`DPI`: a 96-pixel image is
#: shown about 2.5 times larger.
PANEL_INCHES = 2.4
DPI = 100

Panel = Tuple[np.ndarray, str]


def palette(num: int = 256) -> np.ndarray:
    """A fixed RGB colour per class, for models without a dataset palette.

    The first 20 are matplotlib's distinct ``tab20`` colours, the rest random.
    """
    from matplotlib import colormaps
    tab20 = np.asarray(colormaps['tab20'].colors) * 255
    extra = np.random.RandomState(0).randint(40, 256, (max(num - 20, 0), 3))
    return np.concatenate([tab20, extra])[:num].round().astype(np.uint8)


def colour_label(label: np.ndarray,
                 colours: Optional[np.ndarray] = None,
                 ignore_index: int = 255,
                 ignore_colour: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """An ``[H, W]`` class map as an RGB picture, ignored pixels in white."""
    colours = palette() if colours is None else np.asarray(colours, np.uint8)
    label = label.astype(np.int64)
    out = colours[label % len(colours)]
    out[label == ignore_index] = ignore_colour
    return out


def describe_frame(transforms: Sequence[dict], offset: float) -> str:
    """What frame ``offset`` of a policy shows, e.g. ``'rotate -16°'``."""
    if offset == 0:
        return 'the image'
    parts = []
    for item in transforms:
        op, s = item['op'], float(item.get('magnitude', 0.0))
        if op == 'rotate':
            parts.append(f'rotate {s * offset:+g}°')
        elif op in ('translate_x', 'translate_y'):
            axis = 'width' if op == 'translate_x' else 'height'
            parts.append(f'shift {op[-1]} {100 * s * offset:+.3g}% {axis}')
        elif op == 'scale':
            parts.append(f'zoom ×{s ** offset:.3g}')
        elif op in ('shear_x', 'shear_y'):
            parts.append(f'shear {op[-1]} {s * offset:+.3g}')
    return ', '.join(parts) or 'the image (identity)'


def frame_titles(num_frames: int,
                 policy: Optional[DASPolicy] = None,
                 profile: str = 'symmetric',
                 what: Optional[str] = None) -> List[str]:
    """One title per frame: index, step offset and the transform shown.

    Args:
        num_frames (int): T.
        policy (DASPolicy, optional): Fixed policy whose transforms are
            spelt out per frame; its profile wins over ``profile``.
        profile (str): Frame profile when there is no policy.
        what (str, optional): Transform description for every non-reference
            frame when there is no policy (e.g. ``'searched mix'``).

    Returns:
        list[str]: ``'frame t (offset d)\\n<transform>'`` per frame.
    """
    if policy is not None:
        profile = policy.profile
    offsets = frame_offsets(num_frames, profile).tolist()
    titles = []
    for t, d in enumerate(offsets):
        if policy is not None:
            text = describe_frame(policy.transforms, d)
        else:
            text = 'the image' if d == 0 else (what or f'step {d:+g}')
        titles.append(f'frame {t} (offset {d:+g})\n{text}')
    return titles


def legend_entries(classes: Sequence[str],
                   colours: np.ndarray) -> List[Tuple[str, np.ndarray]]:
    """``(name, rgb)`` per class for :func:`render_panels`."""
    return [(name, np.asarray(colours[i])) for i, name in enumerate(classes)]


def render_panels(rows: Sequence[Sequence[Panel]],
                  legend: Optional[Sequence[Tuple[str, np.ndarray]]] = None,
                  title: Optional[str] = None) -> np.ndarray:
    """Draw titled image panels in rows, with an optional class legend.

    Args:
        rows (Sequence[Sequence[tuple]]): Rows of ``(RGB uint8 image,
            title)`` panels; rows may differ in length.
        legend (Sequence[tuple], optional): ``(class name, RGB)`` entries
            drawn as a legend right of the panels.
        title (str, optional): Title above the whole picture.

    Returns:
        np.ndarray: The picture, RGB ``uint8`` ``[H, W, 3]``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    num_cols = max(len(row) for row in rows)
    # the legend takes the free end of the last row, else a column of its own
    legend_cols = 1 if legend and len(rows[-1]) == num_cols else 0
    fig = Figure(
        figsize=((num_cols + 0.9 * legend_cols) * PANEL_INCHES,
                 len(rows) * (PANEL_INCHES + 0.45) + (0.4 if title else 0)),
        dpi=DPI)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(rows), num_cols + legend_cols,
                            width_ratios=[1] * num_cols +
                            [0.9] * legend_cols)
    for r, row in enumerate(rows):
        for c, (image, text) in enumerate(row):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(image, interpolation='nearest')
            ax.set_title(text, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    if legend:
        ax = fig.add_subplot(grid[:, -1] if legend_cols else
                             grid[-1, len(rows[-1]):])
        ax.axis('off')
        handles = [
            Patch(facecolor=np.asarray(rgb) / 255, edgecolor='0.5',
                  label=name) for name, rgb in legend
        ]
        ax.legend(handles=handles, loc='center left', fontsize=9,
                  title='classes', frameon=False)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def save_gif(pictures: Sequence[np.ndarray], path: str,
             duration: int = 400) -> str:
    """Write RGB pictures of one size as a looping animated GIF."""
    from PIL import Image
    images = [Image.fromarray(p) for p in pictures]
    images[0].save(path, save_all=True, append_images=images[1:],
                   duration=duration, loop=0)
    return path


@torch.no_grad()
def das_prediction_views(model, data_batch: dict) -> Dict[str, object]:
    """One sample's DAS frames, image, label and fused prediction.

    Args:
        model: An mmseg segmentor whose data preprocessor makes DAS frames
            (``DASSegDataPreProcessor``, fixed policy or search cell), or a
            plain 2D segmentor.
        data_batch (dict): A collated batch of one sample, as a dataloader
            gives it (``inputs`` and ``data_samples``).

    Returns:
        dict: ``frames`` (RGB ``uint8`` frames the model saw) and
        ``frame_titles``, ``image`` (the reference frame), ``label`` and
        ``pred`` (``[H, W]`` class maps at the image's size), ``classes``
        and ``palette`` (from the model's ``dataset_meta`` when it has one).
    """
    import cv2
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
    frames = [f[:h, :w] for f in frames]
    num_frames = len(frames)
    reference = meta.get('das_reference_frame', num_frames // 2)
    policy = getattr(preprocessor, 'policy', None)
    cell = getattr(preprocessor, 'cell', None)
    titles = frame_titles(
        num_frames, policy,
        profile=getattr(cell, 'profile', 'symmetric'),
        what='searched mix' if cell is not None else None)
    # the prediction is at the original image's size; show it at img_shape
    pred = cv2.resize(sample.pred_sem_seg.data[0].cpu().numpy().astype(
        np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    label = cv2.resize(sample.gt_sem_seg.data[0].cpu().numpy().astype(
        np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    dataset_meta = getattr(model, 'dataset_meta', None) or {}
    num_classes = getattr(model, 'num_classes', None) or int(
        max(label.max(), pred.max()) + 1)
    classes = dataset_meta.get('classes') or [
        f'class {i}' for i in range(num_classes)
    ]
    colours = dataset_meta.get('palette') or palette()[:len(classes)]
    return dict(
        frames=frames,
        frame_titles=titles,
        image=frames[reference if num_frames > 1 else 0],
        label=label,
        pred=pred,
        classes=list(classes),
        palette=np.asarray(colours, np.uint8))


def prediction_picture(views: dict) -> np.ndarray:
    """The frames row, then image, ground truth and fused prediction.

    Args:
        views (dict): What :func:`das_prediction_views` returns.

    Returns:
        np.ndarray: RGB ``uint8`` picture with titles and a class legend.
    """
    colours = views['palette']
    num_frames = len(views['frames'])
    bottom = [(views['image'], 'input image'),
              (colour_label(views['label'], colours), 'ground truth'),
              (colour_label(views['pred'], colours),
               'fused prediction' if num_frames > 1 else 'prediction')]
    rows = [bottom]
    title = 'plain 2D model: image, ground truth and prediction'
    if num_frames > 1:
        rows = [list(zip(views['frames'], views['frame_titles'])), bottom]
        title = (f'DAS: the {num_frames}-frame video the model saw (top), '
                 'fused into one prediction (bottom)')
    return render_panels(
        rows, legend_entries(views['classes'], colours), title=title)


def prediction_gif_frames(views: dict) -> List[np.ndarray]:
    """Per frame of the video: that frame beside the fused prediction."""
    colours = views['palette']
    pred = colour_label(views['pred'], colours)
    legend = legend_entries(views['classes'], colours)
    return [
        render_panels([[(frame, title.replace('\n', ': ')),
                        (pred, 'fused prediction')]], legend,
                      title='DAS video (left) and fused prediction (right)')
        for frame, title in zip(views['frames'], views['frame_titles'])
    ]

