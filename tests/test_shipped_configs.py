"""Shipped configs: the DAS data preprocessor is the one mmengine's Runner
builds into the model (a config where it is not fails early), and the paper
configs keep the base's pretrained weights with one offline override."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmdas.models import DASClsDataPreprocessor
from mmdas.utils import check_config_types, check_das_preprocessor

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                      'configs')
DAS_CONFIGS = sorted(
    osp.splitext(osp.basename(p))[0]
    for p in glob.glob(osp.join(CONFIG_DIR, 'das_*.py')))
# every search config (they override the preprocessor) and one fixed one
CLS_CONFIGS = [
    n for n in DAS_CONFIGS
    if 'resnet' in n and ('search' in n or 'fashionmnist' in n)
]


@pytest.mark.parametrize('name', DAS_CONFIGS)
def test_shipped_das_configs_pass_the_check(name):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name + '.py'))
    check_config_types(cfg)  # includes check_das_preprocessor


@pytest.mark.parametrize('name', CLS_CONFIGS)
def test_runner_builds_the_das_preprocessor_into_mmpretrain_models(
        name, tmp_path):
    from mmengine.runner import Runner
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name + '.py'))
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    pre = runner.model.data_preprocessor
    assert isinstance(pre, DASClsDataPreprocessor)
    if 'search' in name:
        assert pre.cell is not None and pre.policy is None
    else:
        assert pre.policy is not None and pre.cell is None
    assert pre.num_frames == cfg.model.backbone.num_frames


def _old_spelling():
    """The spelling that lost the DAS preprocessor: top level only, while
    something (a base, an override) sets model.data_preprocessor."""
    cfg = Config.fromfile(
        osp.join(CONFIG_DIR, 'plain_resnet18_fashionmnist.py'))
    cfg.merge_from_dict(
        dict(model=dict(
            backbone=dict(type='GSFResNet_CIFAR', num_frames=2),
            head=dict(type='TemporalAvgClsHead',
                      wrapped_type='LinearClsHead'))))
    return cfg


def test_top_level_das_preprocessor_beside_the_models_is_refused():
    cfg = _old_spelling()
    cfg.data_preprocessor.update(type='DASClsDataPreprocessor',
                                 policy='p.json')
    cfg.model.data_preprocessor = dict(type='ClsDataPreprocessor')
    with pytest.raises(ValueError, match=r'data_preprocessor \(top level\).*'
                       r'ignored.*model\.data_preprocessor'):
        check_das_preprocessor(cfg)


def test_video_backbone_without_das_preprocessor_is_refused():
    cfg = _old_spelling()  # plain top-level preprocessor, none in the model
    with pytest.raises(ValueError, match=r"GSFResNet_CIFAR.*num_frames=2.*"
                       r"model default.*DASClsDataPreprocessor"):
        check_das_preprocessor(cfg)
    cfg.data_preprocessor.type = 'DASClsDataPreprocessor'
    check_das_preprocessor(cfg)  # the Runner would use this one: fine
    cfg.model.data_preprocessor = dict(type='ClsDataPreprocessor')
    with pytest.raises(ValueError, match='model.data_preprocessor'):
        check_das_preprocessor(cfg)
    # one frame: a 2D model, any preprocessor
    cfg.data_preprocessor.type = 'ClsDataPreprocessor'
    cfg.model.backbone.num_frames = 1
    check_das_preprocessor(cfg)


SEG_CONFIGS = sorted(
    osp.splitext(osp.basename(p))[0]
    for p in glob.glob(osp.join(CONFIG_DIR, '*deeplabv3plus_[cv]*.py')))


def test_paper_seg_configs_keep_the_bases_imagenet_weights():
    assert len(SEG_CONFIGS) == 6  # das, plain, search x cityscapes, voc
    for name in SEG_CONFIGS:
        cfg = Config.fromfile(osp.join(CONFIG_DIR, name + '.py'))
        assert cfg.model.pretrained == 'open-mmlab://resnet50_v1c', name


def test_offline_download_failure_names_the_override(monkeypatch):
    from urllib.error import URLError

    import mmengine.runner.checkpoint as checkpoint

    from mmdas.models.backbones import GSFResNetV1c

    def no_network(*args, **kwargs):
        raise URLError('[Errno -2] Name or service not known')

    monkeypatch.setattr(checkpoint, 'load_url', no_network)
    net = GSFResNetV1c(depth=18, num_frames=2, init_cfg=dict(
        type='Pretrained', checkpoint='open-mmlab://resnet50_v1c'))
    with pytest.raises(RuntimeError, match=r"resnet50_v1c.*Without network.*"
                       r"`--cfg-options model\.pretrained=None`"):
        net.init_weights()


@pytest.mark.parametrize('name', [
    'plain_deeplabv3plus_r18_embedded', 'das_deeplabv3plus_r18_embedded'
])
def test_demo_classifier_layers_start_at_pytorchs_default_scale(name):
    """The demo's conv_seg init reaches the 2D head through the fusion
    head; mmseg's normal(std=0.01) start kept the demo near zero mIoU."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name + '.py'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    convs = {n: m for n, m in model.named_modules()
             if n.endswith('conv_seg')}
    assert len(convs) == 2  # decode and auxiliary head
    for n, conv in convs.items():
        fan_in = conv.weight[0].numel()
        # kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)), std
        # 1/sqrt(3 fan_in), far from mmseg's 0.01
        expected = (3 * fan_in)**-0.5
        assert conv.weight.std().item() == pytest.approx(expected, rel=0.3)
        assert conv.weight.abs().max().item() <= fan_in**-0.5 + 1e-6
