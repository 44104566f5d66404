"""Checks of the data a config reads: every file decodes, every label fits.

:func:`check_dataset_config` walks the train, val and test sets of an mmseg
or mmpretrain config (``tools/check_dataset.py``, ``tools/train.py
--check-data``) and reports, naming each file, what would otherwise fail deep
inside a run or, worse, silently change it:

* a folder or annotation file that is missing, or a set with no samples;
* a symbolic link loop in a folder (reported; the rest is still checked);
* an image or label that is missing or does not decode (zero bytes,
  truncated), or an image smaller than :data:`MIN_IMAGE_SIZE`;
* a label that is not single-channel, not the size of its image, or holds
  class ids outside ``[0, num_classes)`` other than ``ignore_index`` (after
  the dataset's ``reduce_zero_label`` and ``label_map``, as mmseg's
  ``LoadAnnotations`` applies them);
* a classification label outside ``[0, num_classes)``.

Files are decoded as the config's own loading transforms decode them, in a
pool of threads (OpenCV and Pillow release the GIL while decoding).
"""
import copy
import errno
import os
import os.path as osp
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.pool import ThreadPool
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import mmcv
import numpy as np
from mmengine import fileio
from mmengine.config import Config, ConfigDict
from mmengine.registry import DATASETS, init_default_scope
from mmengine.utils import ProgressBar

#: Smallest image side accepted by default: the output stride of the
#: shipped segmentors (DeepLabV3+ D8). A smaller image leaves less than one
#: feature pixel, and a 1-pixel side makes mmseg squeeze the label to fewer
#: dimensions. ``LoadImageFromFileChecked(min_size=...)`` changes it.
MIN_IMAGE_SIZE = 8

# dataset wrappers: the key that holds the wrapped dataset config(s)
_WRAPPER_KEYS = ('datasets', 'dataset')
_SPLITS = ('train', 'val', 'test')


@dataclass
class DataProblem:
    """One thing wrong with the data.

    Args:
        path (str): The file or folder at fault.
        problem (str): What is wrong with it.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
    """
    path: str
    problem: str
    split: str = ''

    def __str__(self) -> str:
        prefix = f'[{self.split}] ' if self.split else ''
        return f'{prefix}{self.path}: {self.problem}'


@dataclass
class DataCheckReport:
    """What :func:`check_dataset_config` found.

    Args:
        problems (list[DataProblem]): Everything that is wrong.
        num_files (int): Images and labels read.
        seconds (float): Time spent reading them.
    """
    problems: List[DataProblem] = field(default_factory=list)
    num_files: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def files_per_second(self) -> float:
        return self.num_files / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """The report as the tools print it: problems, then a verdict."""
        lines = [str(p) for p in self.problems]
        verdict = 'OK' if self.ok else f'{len(self.problems)} problem(s)'
        lines.append(f'checked {self.num_files} files in {self.seconds:.1f} '
                     f's ({self.files_per_second:.0f} files/s): {verdict}')
        return '\n'.join(lines)


def dataset_source(dataset) -> str:
    """Where a dataset reads its samples from: folders and annotation file.

    Args:
        dataset (BaseDataset): An mmengine dataset (built, maybe lazily).

    Returns:
        str: E.g. ``img_path=data/x/img_dir/train, ann_file=...``.
    """
    parts = []
    prefix = getattr(dataset, 'data_prefix', None) or {}
    for key, value in prefix.items():
        if value:
            parts.append(f'{key}={value}')
    if getattr(dataset, 'ann_file', ''):
        parts.append(f'ann_file={dataset.ann_file}')
    if not parts:
        parts.append(f'data_root={getattr(dataset, "data_root", "")}')
    return ', '.join(parts)


def leaf_dataset_cfgs(dataset_cfg: dict) -> Iterator[dict]:
    """Yield the configs of the datasets a (wrapped) dataset config reads.

    ``ConcatDataset`` (``datasets``), ``RepeatDataset``,
    ``ClassBalancedDataset`` and the like (``dataset``) are unwrapped.
    """
    for key in _WRAPPER_KEYS:
        inner = dataset_cfg.get(key)
        if isinstance(inner, dict):
            yield from leaf_dataset_cfgs(inner)
            return
        if isinstance(inner, (list, tuple)):
            for item in inner:
                yield from leaf_dataset_cfgs(item)
            return
    yield dataset_cfg


def _find_transform(pipeline, suffix: str) -> dict:
    """The first transform whose type ends with ``suffix`` (or ``{}``)."""
    for step in pipeline or ():
        kind = step.get('type', '')
        if isinstance(kind, str) and (kind.endswith(suffix) or
                                      kind.endswith(suffix + 'Checked')):
            return step
    return {}


def _decode(path: str, flag: str, backend: str,
            backend_args: Optional[dict]) -> np.ndarray:
    """Read and decode one file; raise ``ValueError`` saying why it fails."""
    try:
        data = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise ValueError('missing file') from None
    except OSError as e:
        raise ValueError(f'cannot be read ({e})') from None
    if not data:
        raise ValueError('does not decode: empty file (0 bytes)')
    try:
        array = mmcv.imfrombytes(data, flag=flag, backend=backend)
    except Exception as e:  # decoders raise many types
        raise ValueError(f'does not decode ({type(e).__name__}: '
                         f'{str(e).strip()[:200]})') from None
    if array is None:
        raise ValueError(f'does not decode ({len(data)} bytes, '
                         'truncated or not an image)')
    return array


def image_size_problem(shape: Sequence[int], min_size: int) -> Optional[str]:
    """Why an image of ``shape`` (``H, W, ...``) is too small, or None."""
    if min(shape[:2]) >= min_size:
        return None
    return (f'image is {shape[0]}x{shape[1]} (HxW), smaller than the '
            f'minimum {min_size}x{min_size} (the network\'s output stride; '
            'LoadImageFromFileChecked min_size)')


def label_value_lut(reduce_zero_label: bool,
                    label_map: Optional[Dict[int, int]]) -> np.ndarray:
    """Map raw label values (0..255) as mmseg's ``LoadAnnotations`` does."""
    raw = np.arange(256)
    lut = raw.copy()
    if reduce_zero_label:
        lut = raw - 1
        lut[0] = 255
        lut[lut == 254] = 255
    if label_map:
        mapped = lut.copy()
        for old, new in label_map.items():
            mapped[lut == old] = new
        lut = mapped
    return lut


def label_depth_problem(label: np.ndarray) -> Optional[str]:
    """Why a label decoded at its stored depth does not fit uint8, or None.

    mmseg's ``LoadAnnotations`` casts every label to uint8, which wraps a
    16-bit id silently (266 becomes 10).
    """
    if label.dtype == np.uint8 or not label.size:
        return None
    low, high = int(label.min()), int(label.max())
    if low >= 0 and high <= 255:
        return None
    wrapped = high % 256 if high > 255 else low % 256
    return (f'label values {low}..{high} do not fit uint8: it is stored as '
            f'{label.dtype} and mmseg\'s LoadAnnotations would read '
            f'{high if high > 255 else low} as {wrapped}; class ids and '
            'ignore_index must be 0..255')


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def wider_than_8_bits(data: bytes) -> bool:
    """Whether encoded label bytes may hold values beyond uint8.

    False only for an 8-bit PNG (its IHDR bit depth), so that the common
    case costs no second decode; any other format or depth is decoded.
    """
    return not (data[:8] == _PNG_SIGNATURE and data[12:16] == b'IHDR'
                and len(data) > 24 and data[24] <= 8)


def seg_label_problems(label: np.ndarray, image_shape: Sequence[int],
                       num_classes: Optional[int], ignore_index: int,
                       lut: np.ndarray) -> List[str]:
    """What is wrong with a decoded (``flag='unchanged'``) label map.

    Args:
        label (np.ndarray): The label as decoded, before any squeeze.
        image_shape (Sequence[int]): ``(H, W)`` of its image.
        num_classes (int, optional): Valid ids are ``0 .. num_classes - 1``;
            None checks no id.
        ignore_index (int): The id that marks unlabelled pixels.
        lut (np.ndarray): :func:`label_value_lut` of the dataset.

    Returns:
        list[str]: One sentence per problem; empty if the label is fine.
    """
    problems = []
    if label.ndim == 3 and label.shape[2] > 1:
        problems.append(
            f'label is not single-channel: shape {tuple(label.shape)} '
            '(labels are HxW maps of class ids, not colour images)')
        label = label[..., 0]
    elif label.ndim == 3:
        label = label[..., 0]
    if tuple(label.shape[:2]) != tuple(image_shape[:2]):
        problems.append(
            f'label is {"x".join(map(str, label.shape[:2]))} (HxW) but its '
            f'image is {image_shape[0]}x{image_shape[1]}')
    if label.dtype != np.uint8:
        problem = label_depth_problem(label)
        if problem:
            problems.append(problem)
        label = label.astype(np.uint8)
    if num_classes is None:
        return problems
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    mapped = lut[present]
    bad = present[(mapped >= num_classes) & (mapped != ignore_index)]
    if bad.size:
        shown = ', '.join(map(str, bad[:10])) + (', ...'
                                                if bad.size > 10 else '')
        problems.append(
            f'label has class ids outside [0, {num_classes}) that are not '
            f'ignore_index={ignore_index}: {shown}')
    return problems


@dataclass
class _Reader:
    """Checks one sample of one dataset (runs in the thread pool)."""
    img_flag: str = 'color'
    img_backend: str = 'cv2'
    label_backend: str = 'pillow'
    backend_args: Optional[dict] = None
    num_classes: int = 0
    ignore_index: int = 255
    seg: bool = False
    skip_label_dirs: frozenset = frozenset()
    min_size: int = MIN_IMAGE_SIZE

    def __call__(self, info: dict) -> List[DataProblem]:
        problems = []
        image = None
        img_path = info.get('img_path')
        if img_path is not None:
            try:
                image = _decode(img_path, self.img_flag, self.img_backend,
                                self.backend_args)
            except ValueError as e:
                problems.append(DataProblem(img_path, str(e)))
            else:
                small = image_size_problem(image.shape, self.min_size)
                if small:
                    problems.append(DataProblem(img_path, small))
        elif isinstance(info.get('img'), np.ndarray):
            image = info['img']  # an in-memory set (CIFAR, MNIST)
        if self.seg:
            problems += self._check_label(info, image)
        elif 'gt_label' in info:
            label = np.asarray(info['gt_label']).ravel()
            bad = label[(label < 0) | (label >= self.num_classes)]
            if bad.size:
                problems.append(DataProblem(
                    img_path or f'sample {info.get("sample_idx", "?")}',
                    f'class label {bad.tolist()} outside '
                    f'[0, {self.num_classes})'))
        return problems

    def _check_label(self, info: dict, image) -> List[DataProblem]:
        path = info.get('seg_map_path')
        if path is None or osp.dirname(path) in self.skip_label_dirs:
            return []  # no labels (test sets), or reported per folder
        try:
            label = _decode(path, 'unchanged', self.label_backend,
                            self.backend_args)
        except ValueError as e:
            return [DataProblem(path, str(e))]
        lut = label_value_lut(info.get('reduce_zero_label', False),
                              info.get('label_map'))
        shape = image.shape[:2] if image is not None else label.shape[:2]
        return [
            DataProblem(path, p) for p in seg_label_problems(
                label, shape, self.num_classes, self.ignore_index, lut)
        ]


class _LoopSafeEntry:
    """An ``os.DirEntry`` whose ``is_file()`` answers False for a symbolic
    link loop (``ELOOP``), recording its path, instead of raising."""

    def __init__(self, entry, loops: List[str]):
        self._entry, self._loops = entry, loops

    def __getattr__(self, name):
        return getattr(self._entry, name)

    def is_file(self, *args, **kwargs) -> bool:
        try:
            return self._entry.is_file(*args, **kwargs)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            self._loops.append(self._entry.path)
            return False  # and osp.isdir() is False: the entry is skipped


class _LoopSafeOS:
    """The ``os`` module, but ``scandir`` yields :class:`_LoopSafeEntry`."""

    def __init__(self, loops: List[str]):
        self._loops = loops

    def __getattr__(self, name):
        return getattr(os, name)

    def scandir(self, path):
        with os.scandir(path) as entries:
            for entry in entries:
                yield _LoopSafeEntry(entry, self._loops)


@contextmanager
def _symlink_loops_skipped(loops: List[str]):
    """Let mmengine's local folder listing skip symbolic link loops (one
    stops the whole listing otherwise), recording each in ``loops``."""
    from mmengine.fileio.backends import local_backend
    saved = local_backend.os
    local_backend.os = _LoopSafeOS(loops)
    try:
        yield
    finally:
        local_backend.os = saved


def build_dataset_for_check(dataset_cfg: dict,
                            loops: Optional[List[str]] = None):
    """Build a dataset's sample list without its pipeline.

    Args:
        dataset_cfg (dict): The dataset's config.
        loops (list, optional): If given, symbolic link loops in its folders
            are skipped and their paths appended here; else they raise
            ``OSError`` as in mmengine.

    Returns:
        BaseDataset: A fully initialised dataset with ``pipeline=[]``.
    """
    cfg = copy.deepcopy(dataset_cfg)
    cfg['pipeline'] = []
    cfg['serialize_data'] = False  # an empty list is reported, not an error
    if loops is None:
        return DATASETS.build(cfg)
    with _symlink_loops_skipped(loops):
        return DATASETS.build(cfg)


def _reader_for(dataset, dataset_cfg: dict) -> _Reader:
    pipeline = dataset_cfg.get('pipeline') or []
    load_img = _find_transform(pipeline, 'LoadImageFromFile')
    load_ann = _find_transform(pipeline, 'LoadAnnotations')
    classes = dataset.metainfo.get('classes') or ()
    seg = hasattr(dataset, 'ignore_index') and hasattr(
        dataset, 'reduce_zero_label')
    return _Reader(
        img_flag=load_img.get('color_type', 'color'),
        img_backend=load_img.get('imdecode_backend', 'cv2'),
        label_backend=load_ann.get('imdecode_backend', 'pillow'),
        backend_args=load_img.get('backend_args'),
        num_classes=len(classes),
        ignore_index=getattr(dataset, 'ignore_index', 255),
        seg=seg,
        min_size=load_img.get('min_size', MIN_IMAGE_SIZE))


def _missing_label_dirs(infos: List[dict], split: str):
    """Label folders that do not exist, each reported once."""
    counts = {}
    for info in infos:
        path = info.get('seg_map_path')
        if path is not None:
            folder = osp.dirname(path)
            counts[folder] = counts.get(folder, 0) + 1
    missing = {d: n for d, n in counts.items() if not osp.isdir(d)}
    problems = [
        DataProblem(d, f'label folder missing ({n} labels expected)', split)
        for d, n in sorted(missing.items())
    ]
    return frozenset(missing), problems


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_dataset_config(cfg: Config,
                         splits: Sequence[str] = _SPLITS,
                         workers: Optional[int] = None,
                         progress: bool = True,
                         log: Callable[[str], None] = print
                         ) -> DataCheckReport:
    """Check every file of the data sets a config trains and tests on.

    Args:
        cfg (Config): An mmseg or mmpretrain config (its ``default_scope``
            picks the dataset registry).
        splits (Sequence[str]): Which of ``'train'``, ``'val'``, ``'test'``
            to check; a split whose dataloader is missing or equal to an
            earlier one is skipped. Defaults to all three.
        workers (int, optional): Threads that read files. Defaults to
            ``min(32, usable CPU cores + 4)``.
        progress (bool): Show a progress bar per data set. Defaults to True.
        log (Callable): Where progress notes go. Defaults to ``print``.

    Returns:
        DataCheckReport: The problems found, and how fast files were read.
    """
    init_default_scope(cfg.get('default_scope', None) or 'mmengine')
    workers = workers or min(32, _usable_cpus() + 4)  # as ThreadPoolExecutor
    report = DataCheckReport()
    seen = []
    start = time.perf_counter()
    with ThreadPool(workers) as pool:
        for split in splits:
            loader = cfg.get(f'{split}_dataloader')
            if not loader or 'dataset' not in loader:
                continue
            for dataset_cfg in leaf_dataset_cfgs(loader['dataset']):
                plain = dataset_cfg.to_dict() if isinstance(
                    dataset_cfg, ConfigDict) else dict(dataset_cfg)
                if plain in seen:
                    log(f'[{split}] same data set as an earlier split: '
                        'skipped')
                    continue
                seen.append(plain)
                _check_one(pool, dataset_cfg, split, report, progress, log)
    report.seconds = time.perf_counter() - start
    return report


def _check_one(pool, dataset_cfg, split, report, progress, log):
    loops = []
    try:
        dataset = build_dataset_for_check(dataset_cfg, loops)
    except Exception as e:  # missing folder or annotation file, bad config
        where = dataset_cfg.get('data_root', '')
        report.problems.append(DataProblem(
            where, f'{dataset_cfg.get("type")} cannot be built: '
            f'{type(e).__name__}: {e}', split))
        return
    finally:
        report.problems += [
            DataProblem(path, 'symbolic link loop (too many levels of '
                        'symbolic links): not a file, skipped', split)
            for path in sorted(set(loops))
        ]
    source = dataset_source(dataset)
    if len(dataset) == 0:
        report.problems.append(DataProblem(
            source, f'{type(dataset).__name__} has no samples (empty or '
            'wrong folder, or file suffix)', split))
        return
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    reader = _reader_for(dataset, dataset_cfg)
    reader.skip_label_dirs, folder_problems = _missing_label_dirs(
        infos, split)
    report.problems += folder_problems
    log(f'[{split}] {type(dataset).__name__}: {len(infos)} samples from '
        f'{source}')
    bar = ProgressBar(len(infos), file=sys.stdout) if progress else None
    step = max(1, len(infos) // 100)  # redraw the bar about 100 times
    for done, problems in enumerate(
            pool.imap_unordered(reader, infos, chunksize=8), 1):
        for problem in problems:
            problem.split = split
        report.problems += problems
        if bar is not None and (done % step == 0 or done == len(infos)):
            bar.update(step if done % step == 0 else done % step)
    if bar is not None:
        sys.stdout.write('\n')
    report.problems.sort(key=lambda p: (_SPLITS.index(p.split)
                                        if p.split in _SPLITS else 3, p.path))
    report.num_files += sum(
        ('img_path' in info) + (info.get('seg_map_path') is not None)
        for info in infos)


def check_dataset_or_exit(cfg: Config, **kwargs) -> DataCheckReport:
    """:func:`check_dataset_config`, print the report, exit 1 on a problem.

    ``tools/train.py --check-data`` runs this before it builds anything
    (on every rank of a launched run; ranks other than 0 show no progress
    bar).

    Args:
        cfg (Config): The config to check.
        **kwargs: Arguments of :func:`check_dataset_config`.

    Returns:
        DataCheckReport: The report, when nothing is wrong.

    Raises:
        SystemExit: With status 1 if anything is wrong.
    """
    if os.environ.get('RANK', '0') != '0':  # a launched run: one bar
        kwargs.setdefault('progress', False)
    report = check_dataset_config(cfg, **kwargs)
    print(report.summary(), flush=True)
    if not report.ok:
        raise SystemExit(1)
    return report
