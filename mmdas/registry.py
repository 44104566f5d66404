"""Where mmdas registers its components.

mmdas registers into mmengine's *root* registries. mmseg's and mmpretrain's
registries are children of these roots and fall back to their parent on a
miss, so every mmdas component resolves unprefixed (``type='GSFResNetV1c'``)
from a config whose ``default_scope`` is ``'mmseg'`` and from one whose
``default_scope`` is ``'mmpretrain'``, and nested builds inside mmdas modules
need no ``mmdas.`` prefix. The price is that a child registry shadows its
parent, so every mmdas name must be unique across mmseg and mmpretrain;
``tests/test_registry.py`` checks that.
"""
from mmengine.registry import DATA_SAMPLERS, DATASETS, HOOKS, METRICS
from mmengine.registry import MODEL_WRAPPERS, MODELS, TRANSFORMS, VISUALIZERS

__all__ = [
    'DATA_SAMPLERS', 'DATASETS', 'HOOKS', 'METRICS', 'MODEL_WRAPPERS',
    'MODELS', 'TRANSFORMS', 'VISUALIZERS'
]
