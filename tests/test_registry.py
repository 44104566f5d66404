"""mmdas components resolve unprefixed from mmseg and mmpretrain configs."""
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmdas.registry as root
from mmdas.utils import check_config_types

ROOT_REGISTRIES = [getattr(root, name) for name in root.__all__]


def mmdas_components():
    """``(registry name, component name, class)`` of everything mmdas
    registered."""
    found = []
    for registry in ROOT_REGISTRIES:
        for name, obj in registry.module_dict.items():
            if getattr(obj, '__module__', '').startswith('mmdas'):
                found.append((registry.name, name, obj))
    return found


def test_mmdas_registers_components():
    names = {name for _, name, _ in mmdas_components()}
    assert 'MMDASDistributedDataParallel' in names


@pytest.mark.parametrize('scope', ['mmseg', 'mmpretrain'])
def test_unprefixed_lookup_under_scope(scope):
    import importlib
    scope_registry = importlib.import_module(f'{scope}.registry')
    by_name = {r.name: r for r in ROOT_REGISTRIES}
    components = mmdas_components()
    with DefaultScope.overwrite_default_scope(scope):
        for registry_name, name, cls in components:
            child = next(
                getattr(scope_registry, attr) for attr in dir(scope_registry)
                if getattr(getattr(scope_registry, attr), 'parent', None) is
                by_name[registry_name])
            # the child must not shadow our name with a class of its own
            assert child.get(name) is cls, (scope, registry_name, name)


def _cfg(**model):
    return Config(
        dict(default_scope='mmseg', model=dict(type='EncoderDecoder',
                                               **model)))


def test_config_check_suggests_the_right_name():
    cfg = _cfg(backbone=dict(type='ResNetV1cc', depth=18))
    with pytest.raises(KeyError) as err:
        check_config_types(cfg)
    msg = str(err.value)
    assert "model.backbone.type='ResNetV1cc'" in msg
    assert "'ResNetV1c'" in msg
    assert "custom_imports = dict(imports=['mmdas']" in msg


def test_config_check_accepts_valid_config():
    cfg = _cfg(
        backbone=dict(
            type='ResNetV1c', depth=18, norm_cfg=dict(type='BN'),
            init_cfg=dict(type='Pretrained', checkpoint='x.pth')),
        decode_head=dict(
            type='FCNHead', sampler=dict(type='OHEMPixelSampler')))
    cfg.custom_imports = dict(imports=['mmdas'])
    check_config_types(cfg)
