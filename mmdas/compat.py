"""Scoped fixes that let the OpenMMLab 1.x stack run on current torch.

Each fix is applied once by ``import mmdas`` and does nothing where it is not
needed. See ``docs/compat.md`` for the cause of each breakage.

* :func:`install_mmcv_ops_fallback`: with mmcv-lite (no compiled
  ``mmcv._ext``) mmseg cannot import, because several of its modules import
  ``mmcv.ops`` at module level. The fallback registers a ``mmcv.ops`` module
  that holds mmcv's own pure-PyTorch ops (loaded from mmcv-lite's files) and
  answers every compiled op with a stub that raises a clear error when called.
  With full mmcv installed it does nothing.
* :func:`install_checkpoint_loader`: torch>=2.6 loads with
  ``weights_only=True``, which refuses checkpoints that mmengine 0.10.7 itself
  writes (they pickle ``HistoryBuffer`` and numpy objects), while mmengine's
  URL loader unpickles anything. The fix re-registers mmengine's checkpoint
  loaders with ``weights_only=True`` and an allow-list of exactly what such
  checkpoints hold (:mod:`mmdas.checkpoint_loading`); ``torch.load``
  elsewhere is untouched.
* :func:`install_empty_dataset_error`: mmengine's ``BaseDataset`` with no
  samples (an empty or mistyped folder) fails with numpy's ``need at least
  one array to concatenate``. The fix raises an error naming the dataset
  class and its folders instead, when the dataset is built.
* :func:`install_ignore_index_class_weight_fix`: mmseg 1.2.2's
  ``cross_entropy`` with ``class_weight`` looks up ``class_weight[label]``
  for every pixel, ignored ones included, so a label holding
  ``ignore_index`` (255, also what crops pad with) raises ``IndexError``
  (open-mmlab/mmsegmentation#3734). The fix computes that average factor
  with ignored pixels left out of the lookup.
* :func:`install_inference_loader_lookup`: mmseg's ``MMSegInferencer`` and
  ``inference_model`` and mmpretrain's inferencers find the loaders of a
  test pipeline by exact type name (``'LoadImageFromFile'``,
  ``'LoadAnnotations'``), so they miss mmdas's checked subclasses of them.
  The fix makes those look-ups also match a subclass of the named
  transform.
* :func:`register_mmpretrain_model_index`: mmpretrain's ``inference_model``
  and ``get_model`` take model names from its ``ModelHub``; this adds the
  models of mmdas's ``model-index.yml`` to it, so
  ``inference_model('das_resnet18_embedded_digits_cls', img,
  pretrained=CKPT)`` works as for mmpretrain's own models.
"""
import importlib
import importlib.util
import os.path as osp
import sys
import types
from typing import Callable, Dict

from .checkpoint_loading import (UntrustedCheckpointError,  # noqa: F401
                                 allowlisted_getattr,
                                 install_checkpoint_loaders,
                                 load_checkpoint_file)

# Pure-PyTorch modules of ``mmcv/ops`` that need no compiled extension, with
# the public names each provides. mmseg imports ``point_sample`` at import
# time (mmseg.utils.mask_classification, mmseg.models.utils.point_sample).
PURE_TORCH_OPS: Dict[str, tuple] = {
    'point_sample': ('point_sample', 'bilinear_grid_sample',
                     'denormalize', 'normalize', 'rel_roi_point_to_rel_img_point',
                     'generate_grid', 'get_shape_from_feature_map',
                     'abs_img_point_to_rel_img_point',
                     'rel_roi_point_to_abs_img_point', 'SimpleRoIAlign'),
}

# A plain `pip install mmcv==2.1.0` fails on torch >= 2.14 (C++20 headers).
MMCV_FULL_HINT = ('Install full mmcv to use it: `MMCV_FULL=1 make venv` in '
                  'this repository, or `python tools/build_mmcv_full.py` in '
                  'your environment (see docs/compat.md)')


class MissingCompiledOp:
    """Stand-in for an mmcv op that needs the compiled ``mmcv._ext``.

    Importing it succeeds, so that mmseg modules which only *mention* the op
    import; building or calling it raises an error naming the op.
    """

    def __init__(self, name: str):
        self.__name__ = self.__qualname__ = name

    def _fail(self, *args, **kwargs):
        raise RuntimeError(
            f'mmcv.ops.{self.__name__} needs the compiled mmcv extension '
            f'(mmcv._ext), but mmcv-lite is installed. {MMCV_FULL_HINT}.')

    __call__ = _fail

    def __repr__(self) -> str:
        return f'<mmcv.ops.{self.__name__}: needs full mmcv>'


def _load_mmcv_file(mmcv_ops_dir: str, module: str) -> types.ModuleType:
    """Load ``mmcv/ops/<module>.py`` without running ``mmcv/ops/__init__``."""
    name = f'mmcv.ops.{module}'
    spec = importlib.util.spec_from_file_location(
        name, osp.join(mmcv_ops_dir, f'{module}.py'))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def mmcv_has_compiled_ops() -> bool:
    """Whether ``mmcv._ext`` (full mmcv) can be imported."""
    try:
        importlib.import_module('mmcv._ext')
    except ImportError:
        return False
    return True


def install_mmcv_ops_fallback(force: bool = False) -> bool:
    """Make ``import mmcv.ops`` work under mmcv-lite.

    Args:
        force (bool): Install the fallback even if ``mmcv.ops`` imports
            (used by tests). Defaults to False.

    Returns:
        bool: True if the fallback module is (now) in ``sys.modules``.
    """
    current = sys.modules.get('mmcv.ops')
    if getattr(current, '__mmdas_fallback__', False):
        return True
    if not force:
        if current is not None:
            return False
        try:
            importlib.import_module('mmcv.ops')
            return False
        except ImportError as err:
            if '_ext' not in str(err):
                raise
            # a failed import may leave partial submodules behind
            for name in [n for n in sys.modules if n.startswith('mmcv.ops')]:
                del sys.modules[name]

    import mmcv
    ops_dir = osp.join(osp.dirname(mmcv.__file__), 'ops')
    fallback = types.ModuleType('mmcv.ops', doc=(
        'mmdas fallback for mmcv.ops under mmcv-lite: pure-PyTorch ops are '
        "mmcv's own; compiled ops raise when used."))
    fallback.__path__ = [ops_dir]  # allow `import mmcv.ops.<pure module>`
    fallback.__mmdas_fallback__ = True
    for module, names in PURE_TORCH_OPS.items():
        loaded = _load_mmcv_file(ops_dir, module)
        for name in names:
            setattr(fallback, name, getattr(loaded, name))

    def __getattr__(name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        return MissingCompiledOp(name)

    fallback.__getattr__ = __getattr__
    sys.modules['mmcv.ops'] = fallback
    mmcv.ops = fallback
    return True


def install_checkpoint_loader() -> Callable:
    """Register mmdas's safe loaders for mmengine's checkpoint schemes.

    See :mod:`mmdas.checkpoint_loading`: local files, http(s) URLs and
    model-zoo names all load with ``torch.load(weights_only=True)`` and an
    allow-list of what OpenMMLab checkpoints hold.
    """
    install_checkpoint_loaders()
    return load_checkpoint_file


def install_empty_dataset_error() -> Callable:
    """Make an empty mmengine dataset fail at build, naming its folders.

    Wraps ``BaseDataset._serialize_data``, the first step that breaks on an
    empty sample list; non-empty datasets are serialised as before.
    """
    from mmengine.dataset import BaseDataset
    serialize = getattr(BaseDataset._serialize_data, '__wrapped__',
                        BaseDataset._serialize_data)

    def _serialize_data(self):
        if len(self.data_list) == 0:
            from mmdas.datasets.checks import dataset_source
            raise ValueError(
                f'{type(self).__name__} found no samples in '
                f'{dataset_source(self)}: the folder is empty, or data_root, '
                'data_prefix, ann_file or the file suffix '
                f'({getattr(self, "img_suffix", "?")}) is wrong. '
                '`python tools/check_dataset.py CONFIG` checks every split.')
        return serialize(self)

    _serialize_data.__wrapped__ = serialize
    BaseDataset._serialize_data = _serialize_data
    return _serialize_data


def install_ignore_index_class_weight_fix() -> Callable:
    """Let mmseg's ``cross_entropy`` take ``class_weight`` and ignored
    pixels together.

    mmseg 1.2.2 computes the ``'mean'`` reduction's average factor as
    ``sum(class_weight[label])`` over every pixel (a Python loop over the
    batch), which fails for ``ignore_index`` (255 is no class). The wrapper
    gives mmseg that factor, computed in one gather: each non-ignored pixel
    counts ``class_weight[label]``; an ignored pixel counts 0 with
    ``avg_non_ignore=True`` and 1 without, as it does when no
    ``class_weight`` is given (so ``class_weight=[1] * C`` gives exactly the
    loss of no ``class_weight``). Everything else (the loss itself, labels
    out of range, other reductions) is mmseg's own code. ``CrossEntropyLoss``
    picks the function up when it is built (its ``cls_criterion``).
    """
    import torch
    from mmseg.models.losses import cross_entropy_loss
    original = getattr(cross_entropy_loss.cross_entropy, '__wrapped__',
                       cross_entropy_loss.cross_entropy)

    def cross_entropy(pred, label, weight=None, class_weight=None,
                      reduction='mean', avg_factor=None, ignore_index=-100,
                      avg_non_ignore=False):
        if (class_weight is not None and avg_factor is None
                and reduction == 'mean'):
            ignored = label == ignore_index
            kept = label[~ignored]
            if kept.numel() == 0 or (
                    kept.min() >= 0 and kept.max() < class_weight.numel()):
                # else F.cross_entropy in mmseg's code names the bad label
                counted = torch.zeros_like(label, dtype=class_weight.dtype) \
                    if avg_non_ignore else torch.ones_like(
                        label, dtype=class_weight.dtype)
                counted[~ignored] = class_weight[kept]
                avg_factor = counted.sum()
        return original(pred, label, weight=weight,
                        class_weight=class_weight, reduction=reduction,
                        avg_factor=avg_factor, ignore_index=ignore_index,
                        avg_non_ignore=avg_non_ignore)

    cross_entropy.__wrapped__ = original
    cross_entropy.__doc__ = original.__doc__
    cross_entropy_loss.cross_entropy = cross_entropy
    return cross_entropy
def transform_is(transform, name: str, registry) -> bool:
    """Whether a pipeline entry is the transform ``name`` or a subclass.

    Args:
        transform (dict | BaseTransform): A pipeline entry: a config dict
            (``type`` a registered name or a class) or a built transform.
        name (str): Class name of the transform looked for, e.g.
            ``'LoadImageFromFile'``.
        registry (Registry): Where a ``type`` string is resolved (mmseg's or
            mmpretrain's ``TRANSFORMS``).
    """
    kind = transform.get('type') if isinstance(transform, dict) \
        else type(transform)
    if kind == name:
        return True
    if isinstance(kind, str):
        kind = registry.get(kind)
    return isinstance(kind, type) and any(
        cls.__name__ == name for cls in kind.__mro__)


def install_inference_loader_lookup() -> None:
    """Let mmseg's and mmpretrain's inference clients find subclassed
    loaders.

    ``MMSegInferencer`` swaps the test pipeline's ``LoadImageFromFile`` for
    its own loader and drops ``LoadAnnotations``; ``mmseg.apis.
    inference_model`` drops ``LoadAnnotations``; mmpretrain's inferencers
    drop ``LoadImageFromFile`` (``remove_transform``). Each compares type
    names, so with ``LoadImageFromFileChecked`` / ``LoadAnnotationsChecked``
    they fail (``LoadImageFromFile is not found in the test pipeline``,
    ``KeyError: 'seg_map_path'``). After this fix the look-ups match the
    named transform or any subclass of it; stock pipelines are found as
    before.
    """
    import mmpretrain.datasets.transforms as pretrain_transforms
    import mmseg.apis.inference as seg_inference
    from mmpretrain.datasets.transforms import utils as pretrain_utils
    from mmpretrain.registry import TRANSFORMS as PRETRAIN_TRANSFORMS
    from mmseg.apis import MMSegInferencer
    from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS

    def index(pipeline, name, registry) -> int:
        return next((i for i, t in enumerate(pipeline)
                     if transform_is(t, name, registry)), -1)

    def _get_transform_idx(self, pipeline_cfg, name: str) -> int:
        return index(pipeline_cfg, name, SEG_TRANSFORMS)

    def get_transform_idx(pipeline, target: str) -> int:
        return index(pipeline, target, PRETRAIN_TRANSFORMS)

    prepare = getattr(seg_inference._preprare_data, '__wrapped__',
                      seg_inference._preprare_data)

    def _preprare_data(imgs, model):
        # mmseg removes only transforms typed exactly 'LoadAnnotations'
        cfg = model.cfg
        cfg.test_pipeline = [
            t for t in cfg.test_pipeline
            if not transform_is(t, 'LoadAnnotations', SEG_TRANSFORMS)
        ]
        return prepare(imgs, model)

    _preprare_data.__wrapped__ = prepare
    MMSegInferencer._get_transform_idx = _get_transform_idx
    seg_inference._preprare_data = _preprare_data
    # remove_transform looks get_transform_idx up in its module at call time
    pretrain_utils.get_transform_idx = get_transform_idx
    pretrain_transforms.get_transform_idx = get_transform_idx


def register_mmpretrain_model_index() -> int:
    """Add mmdas's models (``mmdas/.mim/model-index.yml``) to mmpretrain's
    ``ModelHub``; names already there are left alone.

    Returns:
        int: How many models were added.
    """
    import yaml
    from mmpretrain.apis.model import ModelHub
    mim_dir = osp.join(osp.dirname(osp.abspath(__file__)), '.mim')
    index = osp.join(mim_dir, 'model-index.yml')
    if not osp.isfile(index):
        return 0
    with open(index) as f:
        first = yaml.safe_load(f)['Import'][0]
    with open(osp.join(mim_dir, first)) as f:
        if ModelHub.has(yaml.safe_load(f)['Models'][0]['Name'].lower()):
            return 0  # registered before
    before = len(ModelHub._models_dict)
    ModelHub.register_model_index(index, config_prefix=mim_dir)
    return len(ModelHub._models_dict) - before


def apply_all() -> None:
    """Apply every fix; called once by ``import mmdas``."""
    install_mmcv_ops_fallback()
    install_checkpoint_loader()
    install_empty_dataset_error()
    install_ignore_index_class_weight_fix()
    install_inference_loader_lookup()
    register_mmpretrain_model_index()
