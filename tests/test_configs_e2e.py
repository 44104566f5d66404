"""Every shipped config trains two iterations and validates, through
``tools/train.py``, on a fixture in its dataset's real folder layout."""
import glob
import math
import os.path as osp
import re
import sys

import pytest
import torch
from mmengine.config import Config

from conftest import run_tool
from fixtures import (check_first_loss, make_cityscapes, make_class_folders,
                      make_fashion_mnist, make_imagenet, make_voc_aug,
                      shrink_config)

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                      'configs')


def _cityscapes(cfg, tmp):
    # 4 images: two ranks x one image x two iterations see each one once
    return make_cityscapes(osp.join(tmp, 'cityscapes'), num_train=4)


def _voc(cfg, tmp):
    return make_voc_aug(osp.join(tmp, 'VOCdevkit', 'VOC2012'))


def _imagenet(cfg, tmp):
    return make_imagenet(osp.join(tmp, 'imagenet'))


def _cifar_as_folders(cfg, tmp):
    root = make_class_folders(osp.join(tmp, 'cifar10'))
    for key, prefix in (('train_dataloader', 'train'),
                        ('val_dataloader', 'test'),
                        ('test_dataloader', 'test')):
        pipeline = cfg[key].dataset.pipeline
        cfg[key].dataset = dict(
            type='CustomDataset', data_prefix=prefix,
            pipeline=[dict(type='LoadImageFromFile')] + list(pipeline))
    cfg.model.head.num_classes = 2
    return root


def _fashion_mnist(cfg, tmp):
    return make_fashion_mnist(osp.join(tmp, 'fashion_mnist'))


# config -> (fixture writer, crop, resize scale, metric printed at val)
SEG = dict(crop=(64, 64), scale=(128, 64))
CONFIGS = {
    'das_deeplabv3plus_cityscapes': (_cityscapes, SEG, 'mIoU'),
    'plain_deeplabv3plus_cityscapes': (_cityscapes, SEG, 'mIoU'),
    'das_deeplabv3plus_voc12aug': (_voc, SEG, 'mIoU'),
    'plain_deeplabv3plus_voc12aug': (_voc, SEG, 'mIoU'),
    'das_resnet50_imagenet': (_imagenet, dict(crop=(32, 32), scale=(36, 36)),
                              'accuracy/top1'),
    'plain_resnet50_imagenet': (_imagenet, dict(crop=(32, 32),
                                                scale=(36, 36)),
                                'accuracy/top1'),
    'das_resnet18_cifar10': (_cifar_as_folders,
                             dict(crop=(32, 32), scale=(32, 32)),
                             'accuracy/top1'),
    'plain_resnet18_cifar10': (_cifar_as_folders,
                               dict(crop=(32, 32), scale=(32, 32)),
                               'accuracy/top1'),
    'das_resnet18_fashionmnist': (_fashion_mnist,
                                  dict(crop=(28, 28), scale=(28, 28)),
                                  'accuracy/top1'),
    'plain_resnet18_fashionmnist': (_fashion_mnist,
                                    dict(crop=(28, 28), scale=(28, 28)),
                                    'accuracy/top1'),
}


# configs whose end-to-end run lives in another test file
COVERED_ELSEWHERE = {
    'plain_deeplabv3plus_r18_embedded': 'test_tools.py, test_dist.py',
    'das_deeplabv3plus_r18_embedded': 'test_tools.py (the demo)',
    'resnet18v1c_embedded_digits_pretrain': 'test_tools.py (the demo)',
    'resnet18_embedded_digits_cls': 'test_tools.py',
    'das_search_deeplabv3plus_r18_embedded': 'test_das_search.py',
    'das_resnet18_embedded_digits_cls': 'test_das_search.py',
    'das_search_resnet18_embedded_digits_cls': 'test_das_search.py',
}


# every search config trains like the config it searches for
CONFIGS.update({
    name.replace('das_', 'das_search_'): value
    for name, value in list(CONFIGS.items()) if name.startswith('das_')
})


# Slow (`make test-slow`, which CI runs): runs that repeat what a quick run
# of the same family already covers. A plain twin is the stock
# mmseg/mmpretrain config plus `custom_imports`, covered by its DAS twin's
# run; a search twin trains like its DAS config, and the quick suite runs
# the search itself on a real config in test_das_search.py
# (test_segmentation_search_then_training_twin).
SLOW = {
    name
    for name in CONFIGS
    if name.startswith('plain_') or name.startswith('das_search_')
}


def test_every_shipped_config_is_covered():
    shipped = {
        osp.splitext(osp.basename(p))[0]
        for p in glob.glob(osp.join(CONFIG_DIR, '*.py'))
    }
    missing = shipped - set(CONFIGS) - set(COVERED_ELSEWHERE)
    assert not missing, f'configs without an end-to-end test: {missing}'


def run_train(config_path, work_dir, *extra):
    """Train through ``tools/train.py``; return its log."""
    return run_tool([
        sys.executable, 'tools/train.py', config_path, '--work-dir',
        str(work_dir), *extra
    ], timeout=900).stdout


@pytest.mark.parametrize('name', [
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
    for name in sorted(CONFIGS)
])
def test_config_trains_and_validates(name, tmp_path):
    writer, sizes, metric = CONFIGS[name]
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name + '.py'))
    root = writer(cfg, str(tmp_path))
    shrink_config(cfg, root, crop=sizes['crop'], scale=sizes['scale'])
    if name.startswith('das_search_') and 'max_epochs' in cfg.train_cfg:
        # the weights see half the fixture: one step an epoch. With
        # zero_init_residual the first step cannot reach the GSF gates (the
        # residual branch ends in a zero BN), so give them a second one.
        cfg.train_cfg.max_epochs = 2
    config_path = str(tmp_path / f'{name}.py')
    cfg.dump(config_path)

    log = run_train(config_path, tmp_path / 'work')
    losses = re.findall(r'(?:Iter|Epoch)\(train\).*? loss: (\S+)', log)
    assert len(losses) >= 2, log[-3000:]
    assert all(math.isfinite(float(v)) for v in losses), losses
    check_first_loss(log, cfg)
    found = re.findall(rf'{re.escape(metric)}: ([0-9.]+)', log)
    assert found, f'no {metric} in the log:\n{log[-3000:]}'
    value = float(found[-1])
    if metric.startswith('accuracy'):
        # one prediction per image (not per frame): a multiple of 100/n
        num_val = _count_val_images(log)
        assert abs(value * num_val / 100 - round(value * num_val / 100)) \
            < 1e-3, (value, num_val)
    ckpts = glob.glob(str(tmp_path / 'work' / '*.pth'))
    assert ckpts, 'no checkpoint written'
    newest = max(ckpts, key=osp.getmtime)
    _assert_trained(torch.load(newest, map_location='cpu',
                               weights_only=False)['state_dict'], name)
    if name.startswith('das_search_'):
        # the search ran (DASSearchHook) and wrote the policy to train with
        from mmdas.policy import DASPolicy
        assert re.search(r'arch_loss: [0-9.]+', log)
        DASPolicy.load(str(tmp_path / 'work' / 'policy.json'))


def _count_val_images(log):
    """Validation iterations (batch 1): ``Iter(val) [i/n]``."""
    counts = re.findall(
        r'(?:Iter|Epoch)\(val\)(?: \[\d+\])? *\[\s*\d+/(\d+)\]', log)
    assert counts, 'no validation iterations in the log'
    return int(counts[-1])


def _assert_trained(state, name):
    """Parameters that start at exactly zero moved: the classifier bias and,
    in DAS models, the zero-init GSF gates (so gradients crossed the DAS
    frames, the fusion head and the temporal modules)."""
    bias = [k for k in state if k in ('decode_head.conv_seg.bias',
                                      'head.fc.bias')]
    assert bias, sorted(state)[-5:]
    assert state[bias[0]].abs().sum() > 0, f'{bias[0]} did not train'
    gates = [v for k, v in state.items() if k.endswith(
        'temporal.gate_conv.weight')]
    if name.startswith('das_'):
        assert gates and any(g.abs().sum() > 0 for g in gates), \
            'the GSF gates did not train'
    else:
        assert not gates


def _fashion_cfg(tmp_path):
    cfg = Config.fromfile(
        osp.join(CONFIG_DIR, 'das_resnet18_fashionmnist.py'))
    root = _fashion_mnist(cfg, str(tmp_path))
    shrink_config(cfg, root, crop=(28, 28), scale=(28, 28))
    path = str(tmp_path / 'fashion.py')
    cfg.dump(path)
    return path


def test_policy_json_from_cfg_options(tmp_path):
    """A policy file (as a search writes it) replaces the config's policy."""
    from mmdas.policy import DASPolicy
    config = _fashion_cfg(tmp_path)
    good = str(tmp_path / 'policy.json')
    DASPolicy.from_dict(
        dict(transforms=[dict(op='rotate', magnitude=4.0)],
             num_frames=8)).dump(good)
    log = run_train(config, tmp_path / 'good', '--cfg-options',
                    f'model.data_preprocessor.policy={good}')
    assert re.search(r'accuracy/top1: [0-9.]+', log)
    # the run's own config (mmengine dumps it) builds a preprocessor that
    # makes its frames with the file's policy, not the config's
    from mmdas.registry import MODELS
    ran = Config.fromfile(str(tmp_path / 'good' / 'fashion.py'))
    assert ran.model.data_preprocessor.policy == good
    pre = MODELS.build(ran.model.data_preprocessor)
    assert [(t['op'], t['magnitude']) for t in pre.policy.to_dict()[
        'transforms']] == [('rotate', 4.0)]
    assert Config.fromfile(config).model.data_preprocessor.policy != good

    bad = tmp_path / 'bad.json'
    bad.write_text(open(good).read().replace('rotate', 'rotat'))
    out = run_tool([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(tmp_path / 'bad'), '--cfg-options',
        f'model.data_preprocessor.policy={bad}'
    ], check=False)
    assert out.returncode != 0
    assert "unknown DAS op 'rotat'" in out.stdout, out.stdout[-2000:]


@pytest.mark.slow  # ~65 s; the demo test runs tools/test.py on a DAS model
def test_das_test_tool_writes_predictions_and_pictures(tmp_path):
    """``tools/test.py --out --show-dir`` on a DAS segmentor: one fused
    prediction per image, as mmseg's own models give."""
    name = 'das_deeplabv3plus_cityscapes'
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name + '.py'))
    root = _cityscapes(cfg, str(tmp_path))
    shrink_config(cfg, root)
    config = str(tmp_path / 'cfg.py')
    cfg.dump(config)
    run_train(config, tmp_path / 'work')

    out = run_tool([
        sys.executable, 'tools/test.py', config,
        str(tmp_path / 'work' / 'iter_2.pth'), '--work-dir',
        str(tmp_path / 'test'), '--out', str(tmp_path / 'pred'),
        '--show-dir', str(tmp_path / 'show')
    ])
    assert re.search(r'mIoU: [0-9.]+', out.stdout)
    import cv2
    preds = glob.glob(str(tmp_path / 'pred' / '**' / '*.png'), recursive=True)
    assert len(preds) == 1  # one val image -> one fused prediction
    pred = cv2.imread(preds[0], cv2.IMREAD_UNCHANGED)
    assert pred.shape == (64, 128)  # the image's size, not T frames'
    shows = glob.glob(str(tmp_path / 'show' / '**' / '*.png'), recursive=True)
    assert len(shows) == 1, shows

    plain_miou = float(re.search(r'mIoU: ([0-9.]+)', out.stdout)[1])

    # --tta: mmseg's multi-scale + flip TTA around the DAS segmentor. With
    # one scale (1.0) and no flip it must give the plain prediction, bit for
    # bit: the DAS preprocessor and its metainfo survive the TTA wrapper
    one = Config.fromfile(config)
    one.tta_pipeline[1].transforms[0] = [
        dict(type='Resize', scale_factor=1.0, keep_ratio=True)]
    one.tta_pipeline[1].transforms[1] = [
        dict(type='RandomFlip', prob=0.0, direction='horizontal')]
    one_config = str(tmp_path / 'one_scale.py')
    one.dump(one_config)
    out = run_tool([
        sys.executable, 'tools/test.py', one_config,
        str(tmp_path / 'work' / 'iter_2.pth'), '--work-dir',
        str(tmp_path / 'tta1'), '--tta', '--out', str(tmp_path / 'pred1')
    ])
    assert float(re.search(r'mIoU: ([0-9.]+)', out.stdout)[1]) == plain_miou
    tta_preds = glob.glob(str(tmp_path / 'pred1' / '**' / '*.png'),
                          recursive=True)
    assert len(tta_preds) == 1
    assert (cv2.imread(tta_preds[0], cv2.IMREAD_UNCHANGED) == pred).all()
    # the shipped TTA (6 scales x 2 flips) runs and scores
    out = run_tool([
        sys.executable, 'tools/test.py', config,
        str(tmp_path / 'work' / 'iter_2.pth'), '--work-dir',
        str(tmp_path / 'tta'), '--tta'
    ])
    assert re.search(r'mIoU: [0-9.]+', out.stdout)


@pytest.mark.parametrize('name', [
    # the R-50 segmentor on two ranks repeats the cheap classifier's check
    pytest.param('das_deeplabv3plus_cityscapes', marks=pytest.mark.slow),
    'das_resnet18_fashionmnist'
])
def test_das_config_trains_on_two_cpu_ranks(name, tmp_path, monkeypatch):
    """``tools/dist_train.sh CONFIG 2`` with a DAS config: both gloo ranks
    train on their half of the data and end with the same weights."""
    from conftest import REPO
    from test_dist import free_port
    writer, sizes, _ = CONFIGS[name]
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name + '.py'))
    root = writer(cfg, str(tmp_path))
    shrink_config(cfg, root, crop=sizes['crop'], scale=sizes['scale'],
                  batch_size=1)
    cfg.custom_imports = dict(
        imports=['mmdas', 'rank_probe_hook'], allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='RankProbeHook')]
    config = str(tmp_path / f'{name}.py')
    cfg.dump(config)
    monkeypatch.setenv('PORT', str(free_port()))
    work_dir = tmp_path / 'work'
    out = run_tool(
        ['bash', osp.join('tools', 'dist_train.sh'), config, '2',
         '--work-dir', str(work_dir)],
        extra_pythonpath=[osp.join(REPO, 'tests')], timeout=600).stdout
    assert 'Distributed training: True' in out

    import json
    records = [
        json.load(open(work_dir / f'rank{rank}.json')) for rank in (0, 1)
    ]
    for rank, record in enumerate(records):
        assert record['rank'] == rank and record['world_size'] == 2
        assert record['iters'] >= 1
        assert record['end_param_sum'] != record['start_param_sum']
    assert not set(records[0]['img_paths']) & set(records[1]['img_paths'])
    assert abs(records[0]['end_param_sum'] - records[1]['end_param_sum']) \
        < 1e-6 * max(1.0, abs(records[0]['end_param_sum']))
    assert len(glob.glob(str(work_dir / '*.pth'))) == 1


def test_shipped_pretrained_offline_failure_names_the_override(tmp_path):
    """A shipped config keeps mmseg's ImageNet weights; where they cannot be
    downloaded, tools/train.py says which override starts from scratch."""
    from conftest import REPO
    cfg = Config.fromfile(
        osp.join(CONFIG_DIR, 'plain_deeplabv3plus_cityscapes.py'))
    assert cfg.model.pretrained == 'open-mmlab://resnet50_v1c'
    root = _cityscapes(cfg, str(tmp_path))
    shrink_config(cfg, root)  # which turns it off, as tests must
    cfg.model.pretrained = 'open-mmlab://resnet50_v1c'
    cfg.custom_imports = dict(imports=['mmdas', 'no_network'],
                              allow_failed_imports=False)
    config = str(tmp_path / 'cfg.py')
    cfg.dump(config)
    out = run_tool([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(tmp_path / 'work')
    ], check=False, extra_pythonpath=[osp.join(REPO, 'tests')])
    assert out.returncode != 0
    assert ("Could not download the pretrained weights "
            "'open-mmlab://resnet50_v1c'") in out.stdout, out.stdout[-3000:]
    assert '`--cfg-options model.pretrained=None`' in out.stdout
