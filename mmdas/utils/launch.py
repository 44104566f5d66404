"""Config preparation shared by ``tools/train.py`` and ``tools/test.py``."""
import datetime
import difflib
import inspect
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope, init_default_scope

# Sections of a config whose ``type`` keys name a component, and the registry
# attribute (of mmseg/mmpretrain/mmengine ``registry`` modules) they use.
_TYPED_SECTIONS = (
    # init_cfg and sampler types live in registries beside MODELS
    ('model', ('MODELS', 'TASK_UTILS', 'WEIGHT_INITIALIZERS')),
    ('custom_hooks', ('HOOKS', )),
    ('train_dataloader.dataset.pipeline', ('TRANSFORMS', )),
    ('val_dataloader.dataset.pipeline', ('TRANSFORMS', )),
    ('test_dataloader.dataset.pipeline', ('TRANSFORMS', )),
)


def _replace_syncbn(node):
    """Turn every ``SyncBN`` norm config into ``BN``, in place."""
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            _replace_syncbn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_syncbn(value)


# Seconds a rank waits for the others in one collective before the run ends
# with an error; torch's defaults (10 to 30 minutes, and no limit in some
# paths) let a stopped rank hang the others for very long.
DEFAULT_DIST_TIMEOUT = 600
DIST_TIMEOUT_ENV = 'MMDAS_DIST_TIMEOUT'


def resolve_dist_timeout(cfg: Config) -> int:
    """The process-group timeout in seconds for a distributed run.

    ``$MMDAS_DIST_TIMEOUT`` overrides the config's
    ``env_cfg.dist_cfg.timeout``; without either it is
    :data:`DEFAULT_DIST_TIMEOUT` (10 minutes).

    Raises:
        ValueError: If the value is not a positive number of seconds.
    """
    dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
    if os.environ.get(DIST_TIMEOUT_ENV):
        value, source = os.environ[DIST_TIMEOUT_ENV], f'${DIST_TIMEOUT_ENV}'
    else:
        value = dist_cfg.get('timeout', DEFAULT_DIST_TIMEOUT)
        source = 'env_cfg.dist_cfg.timeout'
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1
    if not seconds > 0:
        raise ValueError(
            f'{source}={value!r}: the distributed timeout must be a positive '
            f'number of seconds, e.g. {DEFAULT_DIST_TIMEOUT}.')
    return int(seconds) if seconds == int(seconds) else seconds


def prepare_cfg_for_launch(cfg: Config, launcher: str) -> Config:
    """Set ``cfg.launcher`` and make a distributed launch work without CUDA.

    With a launcher other than ``'none'``, ``env_cfg.dist_cfg.timeout`` is
    set (:func:`resolve_dist_timeout`): a rank that stops or dies ends the
    run with an error after that long instead of hanging the others. With
    CUDA nothing else changes (mmengine's ``init_dist`` applies it). Without
    CUDA (mmengine 0.10.7 assumes CUDA there): the gloo process group is
    initialised here, so that mmengine's CUDA-only ``init_dist`` is skipped;
    the model is wrapped by ``MMDASDistributedDataParallel`` (no
    ``device_ids``); ``SyncBN`` becomes ``BN``, since SyncBN needs GPU
    modules.
    """
    cfg.launcher = launcher
    if launcher == 'none':
        return cfg
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
    timeout = resolve_dist_timeout(cfg)
    cfg.env_cfg.dist_cfg.timeout = timeout
    if torch.cuda.is_available():
        return cfg
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            timeout=datetime.timedelta(seconds=timeout))
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict()
    if wrapper.get('type', 'MMDistributedDataParallel') in (
            'MMDistributedDataParallel', 'mmengine.MMDistributedDataParallel'):
        wrapper['type'] = 'MMDASDistributedDataParallel'
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    _replace_syncbn(cfg._cfg_dict)
    return cfg


def _section(cfg: Config, dotted: str):
    # a Config is not a dict: walk its underlying ConfigDict
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for key in dotted.split('.'):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _iter_types(node, path, key='type', skip=()):
    """Yield ``(path, type_name)`` of every string ``key`` under ``node``,
    not descending into the keys in ``skip``."""
    if isinstance(node, dict):
        if isinstance(node.get(key), str):
            yield path, node[key]
        for name, value in node.items():
            if name not in skip:
                yield from _iter_types(value, f'{path}.{name}', key, skip)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _iter_types(value, f'{path}[{i}]', key, skip)


def _scope_registry(scope: str, name: str):
    import importlib
    try:
        module = importlib.import_module(f'{scope}.registry')
    except ImportError:
        module = importlib.import_module('mmengine.registry')
    if not hasattr(module, name):
        module = importlib.import_module('mmengine.registry')
    return getattr(module, name)


def _known_names(registry):
    names = set()
    while registry is not None:
        names.update(registry.module_dict)
        registry = registry.parent
    return names


def check_config_types(cfg: Config) -> None:
    """Fail early, with a fix, when a config names an unknown component.

    Every ``type`` in the model, the custom hooks and the three pipelines must
    resolve in the registry of the config's ``default_scope``. A miss raises a
    ``KeyError`` naming the config field, the unknown name, the closest known
    names and, if the config lacks it, the ``custom_imports`` line mmdas
    components need.
    Then :func:`check_das_preprocessor` checks that a video model gets
    the DAS data preprocessor, and a ``das_search`` section is validated as
    :class:`~mmdas.engine.DASSearchHook` will read it.

    Raises:
        KeyError: If a ``type`` does not resolve.
    """
    scope = cfg.get('default_scope', None) or 'mmengine'
    if DefaultScope.get_current_instance() is None or \
            DefaultScope.get_current_instance().scope_name != scope:
        init_default_scope(scope)
    for section, registry_names in _TYPED_SECTIONS:
        _check_section_types(cfg, scope, section, registry_names)
    check_other_types(cfg)
    check_das_preprocessor(cfg)
    check_das_frames(cfg)
    check_das_pipelines(cfg)
    check_das_cell_fusion(cfg)
    if cfg.get('das_search') is not None:
        # DASSearchHook reads this section only in before_run, after the
        # datasets and the model are built: check it now
        from mmdas.engine.das_search_hook import check_search_settings
        check_search_settings(cfg.das_search, 'das_search')


def _check_section_types(cfg: Config, scope: str, section: str,
                         registry_names, key: str = 'type',
                         skip=()) -> None:
    """Raise a ``KeyError`` with the closest names for the first ``key``
    under ``section`` that no registry of ``registry_names`` holds."""
    node = _section(cfg, section)
    if node is None:
        return
    registries = [_scope_registry(scope, n) for n in registry_names]
    registry_name = registry_names[0]
    for path, type_name in _iter_types(node, section, key, skip):
        if '.' in type_name:  # explicitly scoped: leave it to mmengine
            continue
        if any(r.get(type_name) is not None for r in registries):
            continue
        known = set().union(*(_known_names(r) for r in registries))
        close = difflib.get_close_matches(type_name, sorted(known), n=3,
                                          cutoff=0.6)
        hint = f' Did you mean {", ".join(map(repr, close))}?' if close \
            else ''
        imports = (cfg.get('custom_imports') or {}).get('imports', [])
        if 'mmdas' not in imports:
            hint += (" If it is an mmdas component, add "
                     "`custom_imports = dict(imports=['mmdas'], "
                     "allow_failed_imports=False)` to the config.")
        raise KeyError(
            f'{path}.{key}={type_name!r} is not registered in the '
            f'{scope!r} {registry_name} registry (config default_scope='
            f'{scope!r}).{hint}')


# The other sections whose types the Runner builds, and their registries:
# (section, registry names, key holding the type, subtrees not to walk).
_OTHER_TYPED_SECTIONS = (
    # a wrapping head names its inner head in `wrapped_type`
    ('model', ('MODELS', ), 'wrapped_type', ()),
    *((f'{split}_dataloader.dataset', ('DATASETS', ), 'type',
       ('pipeline', )) for split in ('train', 'val', 'test')),
    *((f'{split}_dataloader.sampler', ('DATA_SAMPLERS', ), 'type', ())
      for split in ('train', 'val', 'test')),
    *((f'{split}_dataloader.batch_sampler', ('DATA_SAMPLERS', ), 'type', ())
      for split in ('train', 'val', 'test')),
    ('val_evaluator', ('METRICS', 'EVALUATOR'), 'type', ()),
    ('test_evaluator', ('METRICS', 'EVALUATOR'), 'type', ()),
    ('optim_wrapper', ('OPTIM_WRAPPERS', 'OPTIMIZERS'), 'type', ()),
    ('param_scheduler', ('PARAM_SCHEDULERS', ), 'type', ()),
    ('default_hooks', ('HOOKS', ), 'type', ()),
    *((f'{loop}_cfg', ('LOOPS', ), 'type', ())
      for loop in ('train', 'val', 'test')),
    ('visualizer', ('VISUALIZERS', 'VISBACKENDS'), 'type', ()),
    ('optim_wrapper', ('OPTIM_WRAPPER_CONSTRUCTORS', ), 'constructor', ()),
    ('model_wrapper_cfg', ('MODEL_WRAPPERS', ), 'type', ()),
    ('log_processor', ('LOG_PROCESSORS', ), 'type', ()),
    ('tta_model', ('MODELS', ), 'type', ()),
    ('tta_pipeline', ('TRANSFORMS', ), 'type', ()),
)


def check_other_types(cfg: Config) -> None:
    """Fail early on an unknown type outside the model, hooks and pipelines.

    Covers what :func:`check_config_types`' model/hook/pipeline walk does
    not: the ``wrapped_type`` of wrapping heads (``TemporalFusionHead``),
    dataset, sampler, evaluator, optimiser (and its constructor), scheduler,
    default-hook, loop, visualiser, model-wrapper, log-processor and
    test-time-augmentation types. The error is that of
    :func:`check_config_types` (field, closest names, ``custom_imports``
    hint).

    Raises:
        KeyError: If a type does not resolve.
    """
    scope = cfg.get('default_scope', None) or 'mmengine'
    for section, registry_names, key, skip in _OTHER_TYPED_SECTIONS:
        _check_section_types(cfg, scope, section, registry_names, key, skip)


def check_das_frames(cfg: Config) -> None:
    """Fail early when a DAS policy is bad or its frames do not fit the
    backbone.

    The policy or cell of the DAS preprocessor the Runner uses
    (``model.data_preprocessor``, else the top-level one) and the policy of
    every ``DASImageToVideo`` in the three pipelines are built, so that a
    bad policy file or magnitude fails now, naming the field; their
    ``num_frames`` must equal ``model.backbone.num_frames`` of a GSF/TSM
    backbone.

    Raises:
        ValueError: Naming both fields and their values.
    """
    from mmdas.models.data_preprocessors.das_preprocessor import \
        build_das_source
    model = cfg.get('model') or {}
    sources = []  # (field, what, policy or cell)
    field = 'model.data_preprocessor'
    pre = model.get('data_preprocessor')
    if pre is None:
        field, pre = 'data_preprocessor', cfg.get('data_preprocessor')
    if isinstance(pre, dict) and (pre.get('policy') is not None
                                  or pre.get('cell') is not None):
        policy, cell = build_das_source(
            pre.get('policy'), pre.get('cell'), field)
        sources.append((field, 'policy', policy) if policy is not None else
                       (field, 'cell', cell))
    for split in ('train', 'val', 'test'):
        section = f'{split}_dataloader.dataset.pipeline'
        for i, step in enumerate(_section(cfg, section) or ()):
            if isinstance(step, dict) and str(step.get('type', '')).endswith(
                    'DASImageToVideo') and step.get('policy') is not None:
                where = f'{section}[{i}]'
                policy, _ = build_das_source(step['policy'], None, where)
                sources.append((where, 'policy', policy))
    cls, frames = _video_backbone(model)
    for where, what, source in sources:
        if cls is not None and source.num_frames != frames:
            raise ValueError(
                f'{where}.{what} makes {source.num_frames} frames '
                f'({what}.num_frames={source.num_frames}) but '
                f'model.backbone.num_frames={frames}: the backbone would '
                f'read {source.num_frames} frames as {frames}. Set both to '
                'the same number.')


def _video_backbone(model: dict):
    """``(class, num_frames)`` of a GSF/TSM backbone in a model config, else
    ``(None, None)``."""
    from mmdas.models.backbones import VideoResNetMixin
    backbone = model.get('backbone') or {}
    cls = _registered(backbone.get('type'))
    if not (isinstance(cls, type) and issubclass(cls, VideoResNetMixin)):
        return None, None
    return cls, backbone.get('num_frames', inspect.signature(
        VideoResNetMixin.__init__).parameters['num_frames'].default)


def _registered(type_name):
    from mmdas.registry import MODELS
    if not isinstance(type_name, str):
        return type_name
    return MODELS.get(type_name.split('.')[-1])


def check_das_preprocessor(cfg: Config) -> None:
    """Fail early when a video model would not be fed DAS videos.

    mmengine's Runner builds the model with ``model.data_preprocessor`` and
    uses the top-level ``data_preprocessor`` only when the model has none. So

    * a top-level DAS setting (a DAS type, ``policy`` or ``cell``) beside a
      ``model.data_preprocessor`` would be ignored: refused;
    * a GSF/TSM backbone with ``num_frames > 1`` needs the DAS preprocessor
      of its library as the one the Runner uses.

    Raises:
        ValueError: Naming the field and the fix.
    """
    from mmdas.models import DASClsDataPreprocessor, DASSegDataPreProcessor
    das_types = (DASClsDataPreprocessor, DASSegDataPreProcessor)
    model = cfg.get('model') or {}
    top = cfg.get('data_preprocessor')
    own = model.get('data_preprocessor')

    def is_das(pre):
        cls = _registered(pre.get('type'))
        return (isinstance(cls, type) and issubclass(cls, das_types)) or any(
            k in pre for k in ('policy', 'cell'))

    if isinstance(top, dict) and own is not None and top != own and is_das(
            top):
        raise ValueError(
            f'data_preprocessor (top level) = {dict(top)} is ignored: '
            "mmengine's Runner uses model.data_preprocessor "
            f"(type={own.get('type')!r}) when the model has one. Put the DAS "
            'settings under model.data_preprocessor (e.g. --cfg-options '
            'model.data_preprocessor.policy=...).')
    backbone = model.get('backbone') or {}
    cls, frames = _video_backbone(model)
    if cls is None:
        return
    used, field = (own, 'model.data_preprocessor') if own is not None else (
        top, 'data_preprocessor')
    used_cls = _registered((used or {}).get('type'))
    if frames > 1 and not (isinstance(used_cls, type)
                           and issubclass(used_cls, das_types)):
        raise ValueError(
            f'model.backbone.type={backbone["type"]!r} with num_frames='
            f'{frames} reads DAS videos, but the data preprocessor the '
            f'Runner uses ({field}) is '
            f"{(used or {}).get('type', 'the model default')!r}. Set "
            f"model.data_preprocessor=dict(type='{cls.das_preprocessor}', "
            'policy=..., ...).')


#: Pipeline transforms that move pixels: after ``DASImageToVideo`` they make
#: its ``das_matrices`` stale (``DASPad`` pads at the bottom and right and
#: records the image's size, so it may follow).
_GEOMETRIC_TRANSFORMS = ('RandomFlip', 'RandomCrop', 'Resize', 'RandomResize',
                         'RandomChoiceResize', 'RandomRotate',
                         'RandomRotFlip', 'ResizeToMultiple',
                         'ResizeShortestEdge', 'RandomResizedCrop',
                         'CenterCrop', 'RandomMosaic', 'Pad', 'TestTimeAug')


def _pipelines(cfg: Config):
    """Yield ``(field, pipeline)`` of every data pipeline of ``cfg``."""

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == 'pipeline' and isinstance(value, (list, tuple)):
                    yield f'{path}.{key}', value
                else:
                    yield from walk(value, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                yield from walk(value, f'{path}[{i}]')

    for section in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        yield from walk(_section(cfg, section), section)
    tta = cfg.get('tta_pipeline')
    if isinstance(tta, (list, tuple)):
        yield 'tta_pipeline', tta


def _types_in(transform) -> list:
    """Type names of a pipeline entry and the transforms it wraps (TTA)."""
    return [t.split('.')[-1] for _, t in _iter_types(transform, '')]


def check_das_pipelines(cfg: Config) -> None:
    """Fail early when a DAS config's pipeline would make wrong geometry.

    * A plain ``Pad`` (mmseg's VOC pipeline pads each crop) records nothing
      of where the image ends, so DAS frames would turn about the padded
      canvas: refused, naming :class:`~mmdas.datasets.DASPad`.
    * A geometric transform after ``DASImageToVideo`` (a flip, crop, resize,
      ``Pad``, a TTA) leaves its ``das_matrices`` stale: refused, naming it.

    Only configs whose data preprocessor is a DAS one, or whose pipelines
    hold ``DASImageToVideo``, are checked.

    Raises:
        ValueError: Naming the pipeline entry and the fix.
    """
    from mmdas.models import DASClsDataPreprocessor, DASSegDataPreProcessor
    model = cfg.get('model') or {}
    pre = model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    cls = _registered(pre.get('type')) if isinstance(pre, dict) else None
    das_model = isinstance(cls, type) and issubclass(
        cls, (DASClsDataPreprocessor, DASSegDataPreProcessor))
    pipelines = list(_pipelines(cfg))
    if not das_model and not any(
            'DASImageToVideo' in _types_in(p) for _, p in pipelines):
        return
    for field, pipeline in pipelines:
        das_at = None
        for i, transform in enumerate(pipeline):
            types = _types_in(transform)
            if 'Pad' in types:
                raise ValueError(
                    f"{field}[{i}]: type='Pad' in a DAS config records "
                    'nothing of where the image ends, so DAS frames would '
                    'turn about the padded canvas and count the padding as '
                    "image. Use type='DASPad' (the same arguments), after "
                    'DASImageToVideo if the pipeline has one, and '
                    "type='PackDASSegInputs' / 'PackDASInputs' to pack it.")
            if das_at is not None:
                moved = [t for t in types if t in _GEOMETRIC_TRANSFORMS]
                if moved:
                    raise ValueError(
                        f'{field}[{i}]: {moved[0]} after DASImageToVideo '
                        f'({field}[{das_at}]) changes the image that its '
                        'das_matrices were made for, so the inverse warp '
                        'would misalign. Move DASImageToVideo after every '
                        'geometric transform, or make the frames in the '
                        'data preprocessor (`policy=`).')
            if 'DASImageToVideo' in types:
                das_at = i


def check_das_cell_fusion(cfg: Config) -> None:
    """Refuse inverse-warp fusion of frames that have no single map.

    A searching :class:`~mmdas.models.DASCell` mixes ops (and a multi-node
    one sums every node's edges), so its frames have no single inverse map;
    :class:`~mmdas.engine.DASSearchHook` refuses ``fusion='inverse_warp'``
    during a search (``das_search.allow_inverse_warp`` opts in). A config
    that trains such a cell without the search is refused here. A
    :class:`~mmdas.models.FrozenDASCell` and a policy have a single map.

    Raises:
        ValueError: Naming the head and the fix.
    """
    from mmdas.models import DASCell, FrozenDASCell
    if cfg.get('das_search') is not None:
        return  # DASSearchHook checks it, with its opt-in
    model = cfg.get('model') or {}
    pre = model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    cell = pre.get('cell') if isinstance(pre, dict) else None
    if not isinstance(cell, dict):
        return
    cls = _registered(cell.get('type'))
    if not (isinstance(cls, type) and issubclass(cls, DASCell)) or issubclass(
            cls, FrozenDASCell):
        return
    for name in ('decode_head', 'auxiliary_head', 'head'):
        heads = model.get(name)
        for i, head in enumerate(heads if isinstance(heads, list) else
                                 [heads]):
            if isinstance(head, dict) and head.get(
                    'fusion', 'inverse_warp') == 'inverse_warp' and (
                        'TemporalFusionHead' in str(head.get('type'))):
                field = f'model.{name}' + (f'[{i}]' if isinstance(
                    heads, list) else '')
                raise ValueError(
                    f"{field}.fusion='inverse_warp', but the frames come from "
                    f"a {cell.get('type')} (model.data_preprocessor.cell), a "
                    'mixture of ops that has no single inverse map. Set '
                    f"{field}.fusion='mean', search it with a das_search "
                    'section (DASSearchHook), or train its result '
                    '(policy=.../policy.json).')


class MissingDataError(FileNotFoundError):
    """A folder or file a config's data set reads does not exist; the
    message is one line naming it and how to make it."""


#: How to make each real data set's folder (type of the dataset config).
_DATA_HINTS = {
    'CityscapesDataset': 'download Cityscapes (leftImg8bit, gtFine) and run '
    "mmseg's tools/dataset_converters/cityscapes.py on it",
    'PascalVOCDataset': 'download VOC2012 and SBD and run mmseg\'s '
    'tools/dataset_converters/voc_aug.py (see mmseg\'s dataset_prepare.md)',
    'ImageNet': 'put ImageNet in mmpretrain\'s layout (train/, val/, meta/)',
    'CIFAR10': 'put the CIFAR-10 python batches there (cifar-10-batches-py)',
    'FashionMNIST': 'apt-get install -y dataset-fashion-mnist && python '
    'tools/prepare_fashion_mnist.py',
}


def _dataset_paths(dataset: dict) -> list:
    """Folders and files a leaf dataset config reads (data_root first)."""
    root = dataset.get('data_root') or ''
    prefix = dataset.get('data_prefix')
    parts = list(prefix.values()) if isinstance(prefix, dict) else [prefix]
    if dataset.get('ann_file'):
        parts.append(dataset['ann_file'])
    paths = [root] if root else []
    paths += [os.path.join(root, p) for p in parts
              if isinstance(p, str) and p]
    return paths


def ensure_data_folders(cfg: Config,
                        splits=('train', 'val', 'test'),
                        generate: bool = True) -> None:
    """Make sure the data sets a run reads exist, before anything builds.

    An embedded digits set that a shipped config reads
    (:data:`mmdas.datasets.embedded.EMBEDDED_SETS`) is written on first
    use, as ``make demo`` does (a folder that exists is never touched).
    Any other missing data root, split folder or annotation file raises
    :class:`MissingDataError`, one line naming the folder and how to make
    it, instead of a ``FileNotFoundError`` traceback from inside mmengine.

    Args:
        cfg (Config): The config.
        splits (Sequence[str]): Which ``<split>_dataloader`` to check.
        generate (bool): Write a missing embedded set. False in a
            distributed launch, where every rank would write it at once.

    Raises:
        MissingDataError: For the first missing path.
    """
    from mmengine.logging import print_log

    from mmdas.datasets.checks import leaf_dataset_cfgs
    from mmdas.datasets.embedded import (EMBEDDED_SETS,
                                         ensure_embedded_dataset)
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, dict) or not isinstance(
                loader.get('dataset'), dict):
            continue
        for dataset in leaf_dataset_cfgs(loader['dataset']):
            paths = _dataset_paths(dataset)
            missing = [p for p in paths if not os.path.exists(p)]
            if not missing:
                continue
            root = os.path.normpath(dataset.get('data_root') or '')
            if root in EMBEDDED_SETS:
                task, kwargs = EMBEDDED_SETS[root]
                if not generate or (os.path.exists(root)
                                    and os.listdir(root)):
                    pass  # someone's own set there: never overwrite it
                else:
                    print_log(
                        f'{split}_dataloader: {root} does not exist; '
                        'writing the embedded digits set there (first use, '
                        'as `make demo` does; tools/make_embedded_dataset.py'
                        ' makes it too)', logger='current')
                    ensure_embedded_dataset(root, task, progress=True,
                                            **kwargs)
                    missing = [p for p in paths if not os.path.exists(p)]
                    if not missing:
                        continue
            if root in EMBEDDED_SETS:
                hint = (f'make it with python tools/make_embedded_dataset.py '
                        f'--task {EMBEDDED_SETS[root][0]} --root {root} '
                        '--force')
            else:
                hint = _DATA_HINTS.get(
                    str(dataset.get('type', '')).split('.')[-1],
                    f"put the data set there, or point {split}_dataloader."
                    "dataset.data_root at it (--cfg-options)")
            raise MissingDataError(
                f'{split}_dataloader.dataset ({dataset.get("type")}): '
                f'{missing[0]} does not exist; {hint}.')
