"""The evidence studies (bench/study_*.py): their resumable runner, the log
parsing, test-time DAS (tools/test.py --das-test-policy), and (slow) both
studies end to end at smoke size."""
import copy
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope

import mmdas  # noqa: F401
from conftest import REPO, run_tool
from mmdas.policy import DASPolicy
from mmdas.utils.test_time_das import (das_test_time_model,
                                       parse_das_test_policy)

sys.path.insert(0, osp.join(REPO, 'bench'))
import study_common as common  # noqa: E402

BN = dict(type='BN', requires_grad=True)
SEG_MODEL = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
        seg_pad_val=255),
    backbone=dict(type='ResNetV1c', depth=18, norm_cfg=BN,
                  dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                  contract_dilation=True),
    decode_head=dict(
        type='DepthwiseSeparableASPPHead', in_channels=512, in_index=3,
        channels=16, dilations=(1, 2), c1_in_channels=64, c1_channels=8,
        dropout_ratio=0., num_classes=3, norm_cfg=BN, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead', in_channels=256, in_index=2, channels=8,
        num_convs=1, concat_input=False, dropout_ratio=0., num_classes=3,
        norm_cfg=BN, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))


# ---- runner: resume and log parsing (no training) ------------------------
class _FinishedProcess:
    returncode = 0

    def __init__(self, path):
        self.log_file = open(path, 'w')

    def poll(self):
        return 0


def test_finished_run_is_not_redone(tmp_path, monkeypatch):
    study = str(tmp_path)
    train = common.Job('train/a/seed0', 'train', 'a.py', meta=dict(seed=0))
    test = common.Job('test/a/seed0', 'test', 'a.py', ['x=1'],
                      checkpoint_of='train/a/seed0', meta=dict(arm='a'))
    # the training run finished in an earlier study run
    os.makedirs(common.work_dir_of(study, train.key))
    stored = osp.join(common.work_dir_of(study, train.key),
                      common.RESULT_FILE)
    with open(stored, 'w') as f:
        json.dump(dict(checkpoint='/ckpt/epoch_1.pth',
                       signature=common.signature(train, 'cpu')), f)
    launched = []

    def fake_launch(job, study_dir, env):
        launched.append((job.key, common.command(job, study_dir)))
        os.makedirs(common.work_dir_of(study_dir, job.key), exist_ok=True)
        return _FinishedProcess(osp.join(tmp_path, job.key.replace('/', '_')))

    monkeypatch.setattr(common, 'launch', fake_launch)
    monkeypatch.setattr(
        common, 'collect',
        lambda job, d: dict(metrics=dict(m=1.0), meta=dict(job.meta)))
    results = common.run_jobs([train, test], study, n_jobs=2, device='cpu')
    # only the test job ran, on the stored checkpoint of the training run
    assert [key for key, _ in launched] == ['test/a/seed0']
    cmd = launched[0][1]
    assert cmd[2:4] == ['a.py', '/ckpt/epoch_1.pth']
    assert cmd[-2:] == ['--cfg-options', 'x=1']
    assert results['test/a/seed0']['metrics'] == dict(m=1.0)
    assert common.load_result(study, 'test/a/seed0')['meta']['arm'] == 'a'
    # a second study run launches nothing
    launched.clear()
    again = common.run_jobs([train, test], study, n_jobs=2, device='cpu')
    assert launched == [] and set(again) == {'train/a/seed0', 'test/a/seed0'}
    # a study dir whose runs had other settings is refused, not mixed in
    changed = common.Job('train/a/seed0', 'train', 'a.py', ['epochs=9'])
    with pytest.raises(ValueError, match='options differ'):
        common.run_jobs([changed, test], study, device='cpu')
    with pytest.raises(ValueError, match='device differ'):
        common.run_jobs([train, test], study, device='cuda')


def test_failed_training_skips_its_test(tmp_path, monkeypatch, capsys):
    study = str(tmp_path)
    train = common.Job('train/b/seed0', 'train', 'b.py')
    test = common.Job('test/b/seed0', 'test', 'b.py',
                      checkpoint_of='train/b/seed0')

    class Failed(_FinishedProcess):
        returncode = 1

    def fake_launch(job, study_dir, env):
        os.makedirs(common.work_dir_of(study_dir, job.key), exist_ok=True)
        return Failed(osp.join(common.work_dir_of(study_dir, job.key),
                               'tool.log'))

    monkeypatch.setattr(common, 'launch', fake_launch)
    assert common.run_jobs([train, test], study, device='cpu') == {}
    out = capsys.readouterr().out
    assert 'FAILED train/b/seed0' in out and 'skip test/b/seed0' in out
    assert common.load_result(study, 'train/b/seed0') is None


def _write_logs(work_dir, records, text):
    run = osp.join(work_dir, '20260101_000000')
    os.makedirs(osp.join(run, 'vis_data'))
    with open(osp.join(run, 'vis_data', '20260101_000000.json'), 'w') as f:
        f.write('\n'.join(json.dumps(r) for r in records) + '\n')
    with open(osp.join(work_dir, 'tool.log'), 'w') as f:
        f.write(text)


def test_parse_logs(tmp_path):
    work = str(tmp_path / 'train')
    _write_logs(work, [
        dict(lr=0.1, time=1.0, data_time=0.1, epoch=1, iter=1, step=1),
        dict(lr=0.1, time=2.0, data_time=0.1, epoch=1, iter=2, step=2),
        dict(lr=0.1, time=4.0, data_time=0.1, epoch=2, iter=3, step=3),
        dict(lr=0.1, time=4.0, data_time=0.1, epoch=2, iter=4, step=4),
        {'accuracy/top1': 55.5, 'time': 0.5, 'data_time': 0.1, 'step': 2},
    ], '')
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write('/w/epoch_2.pth\n')
    train = common.parse_train_log(work)
    assert train['train_s_per_epoch'] == pytest.approx(5.5)  # (3 + 8) / 2
    assert train['train_s_per_iter'] == pytest.approx(3.0)  # median
    assert train['epochs'] == 2 and train['train_iters'] == 4
    assert train['val'] == {'accuracy/top1': 55.5}
    assert train['checkpoint'] == '/w/epoch_2.pth'

    work = str(tmp_path / 'test')
    lines = [
        f'x - mmengine - INFO - Iter(test) [{i}/4]    eta: 0:00:01  '
        f'time: {t:.4f}  data_time: 0.0100  memory: 1' for i, t in
        enumerate([0.9, 0.11, 0.13, 0.12], 1)
    ] + ['x - mmengine - INFO - Iter(test) [4/4]    mIoU: 40.0  '
         'data_time: 0.0100  time: 0.3150']
    _write_logs(work, [dict(mIoU=40.0, time=0.315, data_time=0.01)],
                '\n'.join(lines))
    test = common.parse_test_log(work, batch_size=2)
    assert test['metrics'] == {'mIoU': 40.0}
    # median of 0.10, 0.12, 0.11 s (warm-up iteration left out) / 2 images
    assert test['test_ms_per_image'] == pytest.approx(55.0)
    with open(osp.join(work, 'tool.log'), 'w') as f:
        f.write('\n'.join(lines[:1] + [
            'WARNING - missing keys in source state_dict: decode_head.x'
        ] + lines[1:]))
    with pytest.raises(RuntimeError, match='lacks some of the model'):
        common.parse_test_log(work, batch_size=2)
    open(osp.join(work, 'tool.log'), 'w').close()
    with pytest.raises(RuntimeError, match='logger.interval=1'):
        common.parse_test_log(work, batch_size=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is visible')
def test_cuda_without_gpu_is_refused(tmp_path):
    import argparse
    args = argparse.Namespace(device='cuda', report_only=False,
                              dry_run=False, study_dir=str(tmp_path))
    with pytest.raises(SystemExit, match='--device cpu'):
        common.finish_study(args, [], 'x.py', [], 'mIoU', {}, None)


def test_summarize_over_seeds():
    def test(arm, seed, miou, ms):
        return dict(tool='test', train_key=f'train/{arm}/seed{seed}',
                    metrics=dict(mIoU=miou), test_ms_per_image=ms,
                    meta=dict(arm=arm, seed=seed, passes=4))

    results = {
        't1': test('b', 0, 40.0, 2.0),
        't2': test('b', 1, 44.0, 4.0),
        't3': test('a', 0, 30.0, 1.0),
        'train/b/seed0': dict(tool='train', train_s_per_iter=0.5),
        'train/b/seed1': dict(tool='train', train_s_per_iter=1.5),
    }
    rows = common.summarize(results, 'mIoU',
                            dict(train_s='train_s_per_iter'), ['b', 'a'])
    assert [r['name'] for r in rows] == ['b', 'a']
    b, a = rows
    assert b['mean'] == pytest.approx(42.0)
    assert b['std'] == pytest.approx(2 ** 0.5 * 2)  # sample std
    assert b['n'] == 2 and b['seeds'] == [0, 1] and b['passes'] == 4
    assert b['test_ms_per_image'] == pytest.approx(3.0)
    assert b['train_s'] == pytest.approx(1.0)
    assert a['std'] == 0.0 and a['train_s'] != a['train_s']  # no run: nan


def test_classification_jobs_and_arms(tmp_path):
    sys.path.insert(0, osp.join(REPO, 'bench'))
    import study_classification as cls
    args = cls.parse_args([
        '--study-dir', str(tmp_path), '--seeds', '0', '1', '--arms', 'plain',
        'randaugment', 'das_none', 'das_gsf_searched', '--epochs', '5',
        '--equal-compute', '--num-frames', '4', '--train-subset', '100'
    ])
    jobs = {j.key: j for j in cls.build_jobs(args)}
    # searched arm skipped without a policy; 2D arms also at 4 x 5 epochs
    assert sorted({k.split('/')[1] for k in jobs}) == [
        'das_none', 'plain', 'plain_x4', 'randaugment', 'randaugment_x4']
    assert len(jobs) == 5 * 2 * 2
    long = jobs['train/plain_x4/seed1']
    assert 'train_cfg.max_epochs=20' in long.options
    assert 'param_scheduler.milestones=[12,16]' in long.options
    assert 'randomness.seed=1' in long.options
    assert 'train_dataloader.dataset.indices=100' in long.options
    das = jobs['test/das_none/seed0']
    assert 'model.backbone.temporal_module=None' in das.options
    assert das.meta['passes'] == 4 and das.checkpoint_of == \
        'train/das_none/seed0'
    # the augmentation arm trains from a config that inherits the plain one
    from mmengine.config import Config
    cfg = Config.fromfile(jobs['train/randaugment/seed0'].config)
    types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert types[:2] == ['RandomCrop', 'RandomFlip'] and 'RandAugment' in types
    assert cfg.model.backbone.type == 'ResNet_CIFAR'
    # the T x run for named 2D arms only
    args = cls.parse_args([
        '--study-dir', str(tmp_path), '--seeds', '0', '--arms', 'plain',
        'randaugment', '--equal-compute', '--equal-compute-arms', 'plain',
        '--num-frames', '4'
    ])
    assert sorted({j.key.split('/')[1] for j in cls.build_jobs(args)}) == [
        'plain', 'plain_x4', 'randaugment']
    with pytest.raises(SystemExit):  # a DAS arm has no T x run
        cls.parse_args(['--equal-compute-arms', 'das_gsf'])

    policy = tmp_path / 'policy.json'
    DASPolicy([dict(op='scale', magnitude=1.05)], num_frames=6).dump(
        str(policy))
    args = cls.parse_args(['--study-dir', str(tmp_path), '--seeds', '0',
                           '--arms', 'das_gsf_searched',
                           '--searched-policy', str(policy)])
    job = cls.build_jobs(args)[0]
    assert f'model.data_preprocessor.policy={policy}' in job.options
    assert 'model.backbone.num_frames=6' in job.options
    assert job.meta['passes'] == 6


def test_segmentation_jobs_equal_compute_model(tmp_path):
    """The 2D model at equal training compute trains T x the iterations,
    with the same warm-up, and both its arms test that checkpoint."""
    sys.path.insert(0, osp.join(REPO, 'bench'))
    import study_segmentation as seg
    args = seg.parse_args([
        '--study-dir', str(tmp_path), '--seeds', '3', '--iters', '100',
        '--arms', '2d', '2d_xT', '2d_xT_tta_eq'
    ])
    jobs, frames = seg.build_jobs(args)
    jobs = {j.key: j for j in jobs}
    assert frames == 4
    assert sorted(jobs) == [
        'test/2d/seed3', 'test/2d_xT/seed3', 'test/2d_xT_tta_eq/seed3',
        'train/2d/seed3', 'train/2d_xT/seed3'
    ]
    long, short = jobs['train/2d_xT/seed3'], jobs['train/2d/seed3']
    assert 'train_cfg.max_iters=400' in long.options
    assert 'param_scheduler.1.end=400' in long.options
    assert 'train_cfg.max_iters=100' in short.options
    assert 'param_scheduler.0.end=20' in long.options  # same warm-up
    assert long.config == short.config
    tta = jobs['test/2d_xT_tta_eq/seed3']
    assert tta.checkpoint_of == 'train/2d_xT/seed3' and '--tta' in tta.args
    assert tta.meta['passes'] == 4


def test_augmentation_pipelines_run_on_grey_images():
    """mmpretrain's RandAugment/AutoAugment ops and torchvision's
    TrivialAugmentWide on a 28x28 grey image, as the study applies them."""
    import numpy as np
    from mmpretrain.registry import TRANSFORMS
    sys.path.insert(0, osp.join(REPO, 'bench'))
    import study_classification as cls
    init_default_scope('mmpretrain')
    rng = np.random.default_rng(0)
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 8:20] = rng.integers(60, 255, (16, 12))
    for arm, pipeline in cls.PIPELINES.items():
        transforms = [TRANSFORMS.build(t) for t in pipeline]
        for _ in range(30):  # many random op choices
            results = dict(img=img.copy(), gt_label=np.array(3, np.int64))
            for t in transforms:
                results = t(results)
            assert results['inputs'].shape == (1, 28, 28), arm
            assert results['inputs'].dtype == torch.uint8, arm


# ---- test-time DAS -------------------------------------------------------
def test_das_test_policy_parsing(tmp_path):
    policy = parse_das_test_policy('rotate:8', 4)
    assert policy.transforms == [dict(op='rotate', magnitude=8.0)]
    assert policy.num_frames == 4
    path = tmp_path / 'p.json'
    DASPolicy([dict(op='translate_x', magnitude=0.1)], num_frames=3).dump(
        str(path))
    assert parse_das_test_policy(str(path)).num_frames == 3
    with pytest.raises(ValueError, match='--das-test-frames: 5 differs'):
        parse_das_test_policy(str(path), 5)
    with pytest.raises(ValueError, match='OP:MAGNITUDE'):
        parse_das_test_policy('rotate')
    with pytest.raises(ValueError, match="unknown DAS op 'rotat'"):
        parse_das_test_policy('rotat:8')


def test_das_test_time_model_config():
    cfg = ConfigDict(copy.deepcopy(SEG_MODEL))
    policy = DASPolicy([dict(op='rotate', magnitude=5.0)], num_frames=4)
    das = das_test_time_model(cfg, policy)
    assert cfg.backbone.type == 'ResNetV1c'  # the input is not changed
    assert das['type'] == 'DASEncoderDecoder'
    assert das['backbone']['type'] == 'GSFResNetV1c'
    assert das['backbone']['num_frames'] == 4
    assert das['backbone']['temporal_module'] is None
    assert das['data_preprocessor']['type'] == 'DASSegDataPreProcessor'
    assert das['data_preprocessor']['policy'] == policy.to_dict()
    assert das['data_preprocessor']['mean'] == SEG_MODEL[
        'data_preprocessor']['mean']
    assert das['decode_head']['type'] == 'TemporalFusionHead'
    assert das['decode_head']['fusion'] == 'inverse_warp'
    assert das['decode_head']['head'] == SEG_MODEL['decode_head']
    assert das['auxiliary_head'] == SEG_MODEL['auxiliary_head']
    bad = copy.deepcopy(cfg)
    bad.backbone.type = 'GSFResNetV1c'
    with pytest.raises(ValueError, match='model.backbone.type'):
        das_test_time_model(bad, policy)
    bad = copy.deepcopy(cfg)
    bad.type = 'ImageClassifier'
    with pytest.raises(ValueError, match='model.type'):
        das_test_time_model(bad, policy)


def _fusion_head_keeps_2d_names():
    """Whether TemporalFusionHead saves its inner head under the 2D names
    (then a 2D checkpoint loads into a test-time DAS model as it is)."""
    from mmdas.models.decode_heads import TemporalFusionHead
    head = TemporalFusionHead(wrapped_type='FCNHead', in_channels=4,
                              channels=4, num_convs=1, num_classes=3)
    return 'conv_seg.weight' in head.state_dict()


def _load_2d_weights(model, state):
    """Load a 2D state dict strictly. Until TemporalFusionHead saves its
    inner head under the 2D names, nest the decode head's keys here."""
    if not _fusion_head_keeps_2d_names():
        state = {k.replace('decode_head.', 'decode_head.head.', 1): v
                 for k, v in state.items()}
    model.load_state_dict(state, strict=True)


def test_das_test_time_model_runs_the_2d_weights():
    """With identity frames the test-time DAS model predicts what the 2D
    model predicts; with a real motion it predicts something else."""
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    init_default_scope('mmseg')
    torch.manual_seed(0)
    plain = MODELS.build(ConfigDict(copy.deepcopy(SEG_MODEL))).eval()
    plain.init_weights()
    image = torch.randint(0, 255, (3, 40, 48), dtype=torch.uint8)

    def predict(model):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(40, 48), ori_shape=(40, 48)))
        with torch.no_grad():
            out = model.test_step(dict(inputs=[image],
                                       data_samples=[sample]))
        return out[0].seg_logits.data

    expected = predict(plain)
    for transforms, same in (([], True),
                             ([dict(op='rotate', magnitude=10.0)], False)):
        policy = DASPolicy(transforms, num_frames=3)
        model = MODELS.build(
            ConfigDict(das_test_time_model(SEG_MODEL, policy))).eval()
        _load_2d_weights(model, plain.state_dict())
        logits = predict(model)
        assert logits.shape == expected.shape
        assert torch.allclose(logits, expected, atol=1e-4) is same


# ---- both studies end to end (slow) --------------------------------------
def _check_outputs(study_dir, md, png, metric):
    with open(osp.join(study_dir, 'results.json')) as f:
        results = json.load(f)
    assert results['summary'], results
    tests = [r for r in results['runs'] if r['tool'] == 'test']
    assert all(metric in r['metrics'] for r in tests)
    text = open(md).read()
    assert 'bench/study_' in text and '| arm |' in text
    assert ' ± ' in text
    for row in results['summary']:
        # each arm's row is the mean of its own test runs' metric (one seed
        # here), and the report's table shows it
        values = [r['metrics'][metric] for r in tests
                  if r['meta']['arm'] == row['name']]
        assert row['n'] == len(values) == 1, (row, values)
        assert row['mean'] == pytest.approx(sum(values) / len(values))
        assert row['test_ms_per_image'] > 0
        assert f"{row['mean']:.2f}" in text, (row['name'], row['mean'])
    assert os.path.getsize(png) > 1000
    return results


@pytest.mark.slow
def test_classification_study_smoke(tmp_path):
    if not osp.isdir('/usr/share/datasets/fashion-mnist'):
        pytest.skip('apt-get install dataset-fashion-mnist')
    study, md, png = tmp_path / 's', tmp_path / 'c.md', tmp_path / 'c.png'
    cmd = [sys.executable, osp.join(REPO, 'bench', 'study_classification.py'),
           '--device', 'cpu', '--seeds', '0', '--arms', 'plain',
           'trivialaugment', 'das_gsf', '--epochs', '1', '--train-subset',
           '64', '--test-subset', '64', '--width', '8', '--num-frames', '2',
           '--num-workers', '0', '--test-batch', '16', '--jobs', '2',
           '--data-root', str(tmp_path / 'fmnist'), '--study-dir', str(study),
           '--md', str(md), '--png', str(png)]
    out = run_tool(cmd, timeout=1800).stdout
    assert '6 jobs: 0 finished earlier, 6 to run' in out
    results = _check_outputs(str(study), str(md), str(png), 'accuracy/top1')
    assert {r['name'] for r in results['summary']} == {
        'plain', 'trivialaugment', 'das_gsf'}
    # resumable: a second run redoes nothing
    out = run_tool(cmd, timeout=600).stdout
    assert '6 jobs: 6 finished earlier, 0 to run' in out


@pytest.mark.slow
def test_segmentation_study_smoke(tmp_path):
    study, md, png = tmp_path / 's', tmp_path / 's.md', tmp_path / 's.png'
    cmd = [sys.executable, osp.join(REPO, 'bench', 'study_segmentation.py'),
           '--device', 'cpu', '--seeds', '0', '--iters', '2', '--num-train',
           '4', '--num-val', '2', '--size', '64', '--jobs', '2',
           '--data-root', str(tmp_path / 'digits'), '--study-dir',
           str(study), '--md', str(md), '--png', str(png)]
    arms = ['2d', '2d_tta', '2d_tta_eq', '2d_dastest', 'das_mean',
            'das_inverse_warp']
    if not _fusion_head_keeps_2d_names():
        # a 2D checkpoint cannot load into the test-time DAS model yet; the
        # study refuses such a run (test_parse_logs) instead of reporting it
        arms.remove('2d_dastest')
    run_tool(cmd + ['--arms', *arms], timeout=1800)
    results = _check_outputs(str(study), str(md), str(png), 'mIoU')
    rows = {r['name']: r for r in results['summary']}
    assert list(rows) == arms
    assert rows['2d_tta']['passes'] == 6 and rows['2d_tta_eq']['passes'] == 4
    assert 'At equal inference cost (4 forward passes' in open(md).read()


@pytest.mark.slow
def test_search_study_smoke(tmp_path):
    """bench/study_search.py end to end at tiny size: every arm has a row
    with numbers, the searched/argmax/random arms are their op's oracle
    run, a rerun runs nothing, and a new search budget runs only its
    search."""
    if not osp.isdir('/usr/share/datasets/fashion-mnist'):
        pytest.skip('apt-get install dataset-fashion-mnist')
    import random

    import study_search
    study, md, png = tmp_path / 's', tmp_path / 'r.md', tmp_path / 'r.png'
    cmd = [sys.executable, osp.join(REPO, 'bench', 'study_search.py'),
           '--device', 'cpu', '--seeds', '0', '--epochs', '1',
           '--train-subset', '128', '--batch-size', '16', '--test-subset',
           '64', '--test-batch', '16', '--width', '8', '--num-frames', '2',
           '--jobs', '2', '--data-root', str(tmp_path / 'fmnist'),
           '--study-dir', str(study), '--md', str(md), '--png', str(png)]
    out = run_tool(cmd, timeout=1800).stdout
    # 1 search, 5 oracle ops and the 2D arm (train + test each)
    assert '13 jobs: 0 finished earlier, 13 to run' in out
    with open(study / 'results.json') as f:
        results = json.load(f)
    ops = results['ops']
    assert ops == ['identity', 'translate_x', 'translate_y', 'scale',
                   'rotate']
    assert results['magnitudes'] == dict(identity=0.0, translate_x=0.05,
                                         translate_y=0.05, scale=1.05,
                                         rotate=5.0)
    rows = {r['name']: r for r in results['summary']}
    assert list(rows) == [f'op:{op}' for op in ops] + [
        'random', 'oracle_best', 'searched@base', 'argmax@base', 'plain']
    text = open(md).read()
    tests = {r['key']: r for r in results['runs'] if r['tool'] == 'test'}
    for name, row in rows.items():
        # each arm's figure is its test run's metric, as tools/test.py
        # logged it, and the report prints it
        assert row['n'] == 1, row
        logged = [tests[key]['metrics']['accuracy/top1']
                  for key in row['test_keys']]
        assert row['mean'] == pytest.approx(logged[0]), (name, row)
        assert f'| `{name}` |' in text and f"{row['mean']:.2f}" in text
    assert rows['oracle_best']['mean'] == max(
        rows[f'op:{op}']['mean'] for op in ops)
    assert len(tests) == 6  # no extra training for a reused arm
    # reuse: the searched and argmax arms are the oracle run of the op the
    # search wrote, the random arm that of the seed's own draw
    work = study / 'runs' / 'search' / 'base' / 'seed0'
    for kind, name in (('searched', 'policy.json'),
                       ('argmax', 'policy_argmax.json')):
        with open(work / name) as f:
            op = json.load(f)['transforms'][0]['op']
        assert rows[f'{kind}@base']['test_keys'] == [f'test/op_{op}/seed0']
    drawn = random.Random(0).choice(ops)
    assert drawn == study_search.random_op(ops, 0)
    assert rows['random']['test_keys'] == [f'test/op_{drawn}/seed0']
    record, = results['seeds']
    assert set(record['drops']) == set(ops)
    assert sum(record['softmax_alpha'].values()) == pytest.approx(1.0)
    assert 1 <= record['rank_searched'] <= 5
    assert record['oracle_top1'][record['searched']] == rows[
        'searched@base']['mean']
    assert 'search / oracle' in text
    assert os.path.getsize(png) > 1000
    # resumable: a rerun runs nothing; a second budget only its search
    out = run_tool(cmd, timeout=600).stdout
    assert '13 jobs: 13 finished earlier, 0 to run' in out
    out = run_tool(cmd + ['--budget', 'base', 'lr=3e-3,eval=all'],
                   timeout=600).stdout
    assert '14 jobs: 13 finished earlier, 1 to run' in out
    assert 'start search/lr=3e-3,eval=all/seed0' in out
    with open(study / 'results.json') as f:
        names = [r['name'] for r in json.load(f)['summary']]
    assert 'searched@lr=3e-3,eval=all' in names


def test_search_study_budgets_and_unmatched_policy(tmp_path):
    """A search budget parses to the search's options; a searched policy
    that is no oracle arm's (e.g. a learnt magnitude) is trained on its
    own, a matching one is not."""
    import study_search
    args = study_search.parse_args([
        '--study-dir', str(tmp_path), '--budget', 'base',
        'lr=3e-3,epochs=8,eval=all'])
    base, other = args.budgets
    assert base == dict(name='base', lr=None, epochs=None, eval=None)
    assert other == dict(name='lr=3e-3,epochs=8,eval=all', lr=3e-3,
                         epochs=8, eval='all')
    with pytest.raises(SystemExit):
        study_search.parse_budget('lr')
    job = study_search.search_job(args, other, 1)
    assert 'das_search.arch_optimizer.lr=0.003' in job.options
    assert 'das_search.selection.eval_batches=None' in job.options
    assert 'train_cfg.max_epochs=8' in job.options
    assert 'train_cfg.val_interval=9' in job.options  # no supernet val
    ops, mags, _ = study_search.search_space(args.cfg['search'])
    study_search.write_oracle_policies(args, ops, mags)
    work = common.work_dir_of(str(tmp_path), 'search/base/seed0')
    os.makedirs(work)
    with open(osp.join(work, common.RESULT_FILE), 'w') as f:
        json.dump(dict(signature={}), f)
    DASPolicy([dict(op='scale', magnitude=1.05)], num_frames=4).dump(
        osp.join(work, 'policy_argmax.json'))
    DASPolicy([dict(op='scale', magnitude=1.07)], num_frames=4).dump(
        osp.join(work, 'policy.json'))
    paths = {op: study_search.policy_path(str(tmp_path), op) for op in ops}
    found = study_search.searched_policies(args, paths, base, 0)
    assert found['argmax']['oracle'] and not found['searched']['oracle']
    extra = study_search.extra_jobs(args, base, 0, found)
    assert [j.key for j in extra] == ['train/searched_base/seed0',
                                      'test/searched_base/seed0']


def test_study_scripts_help():
    for name in ('study_classification.py', 'study_segmentation.py',
                 'study_search.py'):
        out = subprocess.run(
            [sys.executable, osp.join(REPO, 'bench', name), '--help'],
            capture_output=True, text=True, check=True).stdout
        assert '--jobs' in out and '--seeds' in out and '--device' in out


def test_video_cost_per_round_ratio_is_the_median_of_paired_steps():
    import bench_video_cost as video_cost
    times = {'GSF': [2., 3., 10., 4.4], '2D': [1., 3., 5., 4.]}
    # per round 2, 1, 2, 1.1, median 2; the ratio of the arms' medians
    # would be 4.4 / 4 = 1.1
    assert video_cost.per_round(times, 'GSF', '2D') == 2.
    assert video_cost.median([3., 1., 2.]) == 2.


# slow: five child processes (about 30 s); a check of a benchmark's probe
@pytest.mark.slow
def test_video_cost_cpu_peak_memory_grows_with_frames():
    """The CPU peak-memory probe of bench/bench_video_cost.py measures the
    step, not the process: more frames per image hold more activations."""
    import argparse

    import bench_video_cost as video_cost
    # a size at which 7 more frames of activations (about 200-280 MB here)
    # stand out of the allocator's noise (tens of MB: at 2 images of 64 px
    # both arms' one-frame peaks came out at or above their 8-frame peaks)
    args = argparse.Namespace(batch=4, crop=112, classes=10, depth=18,
                              threads=1, arms=['GSF', '3D'])
    one = video_cost.cpu_step_peaks(1, args)
    eight = video_cost.cpu_step_peaks(8, args)
    for arm in args.arms:
        assert 0 < one[arm]['rss'] < eight[arm]['rss'] - 50 * 2**20, (
            arm, one, eight)
        assert 0 < one[arm]['tensors'] < eight[arm]['tensors'], (arm, one,
                                                                  eight)
    # (the 3D net's one-frame peak of tensors is its optimiser step's, 4 x
    # its weights, close to its 8-frame activations' peak; GSF's grows by 7
    # frames of activations, about 150 MB here)
    assert eight['GSF']['tensors'] - one['GSF']['tensors'] > 100e6, (one,
                                                                     eight)
    # 3x3 convs over time: the 3D net's weights, gradients and momentum
    # are about 3x ResNet-18's 45 MB each
    assert one['3D']['rss'] > one['GSF']['rss'] + 100 * 2**20, one
    # live tensors: the model, its gradients and momentum (3 x 45 MB for
    # GSF's ResNet-18) and the activations, exactly; 3x that model for 3D
    assert 3 * 45e6 < one['GSF']['tensors'] < one['3D']['tensors'] - 200e6
    # a child that fails reports its error instead of leaving the parent
    # waiting for a number
    args.arms = ['GSF']
    args.depth = 19
    with pytest.raises(KeyError, match='19'):
        video_cost.cpu_step_peaks(1, args)
