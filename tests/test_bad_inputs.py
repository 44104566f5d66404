"""Bad labels, bad numbers and bad files: each fails naming what is wrong,
or (255 labels) trains as documented (issue 19)."""
import glob
import os
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import SEG_CONFIG, run_tool, seg_options
from mmdas.datasets.embedded import make_embedded_segmentation

TRAIN = [sys.executable, osp.join('tools', 'train.py')]
TEST = [sys.executable, osp.join('tools', 'test.py')]


# ---- 1. ignore_index with class_weight ------------------------------------
@pytest.mark.parametrize('avg_non_ignore', [False, True])
@pytest.mark.parametrize('class_weight', [None, [0.3, 1.0, 2.0]])
def test_ignored_pixels_take_no_part_in_the_loss(class_weight,
                                                 avg_non_ignore):
    from mmseg.models.losses import CrossEntropyLoss
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    label = torch.randint(0, 3, (2, 4, 5))
    label[:, 0] = 255  # a padded strip, as a crop of a non-square image
    loss = CrossEntropyLoss(
        class_weight=class_weight, avg_non_ignore=avg_non_ignore)(
            logits, label, ignore_index=255)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[:, :, 0].abs().max() == 0  # ignored: no gradient
    assert logits.grad[:, :, 1:].abs().max() > 0
    weight = torch.tensor(class_weight or [1.0] * 3)
    kept = label != 255
    per_pixel = F.cross_entropy(logits, label, weight=weight,
                                ignore_index=255, reduction='none')
    denominator = weight[label[kept]].sum() + (0 if avg_non_ignore else
                                               (~kept).sum())
    torch.testing.assert_close(loss, per_pixel.sum() / denominator)
    if avg_non_ignore:  # PyTorch's own weighted mean over kept pixels
        torch.testing.assert_close(
            loss, F.cross_entropy(logits, label, weight=weight,
                                  ignore_index=255))


def test_unit_class_weight_equals_no_class_weight():
    from mmseg.models.losses import CrossEntropyLoss
    logits = torch.randn(1, 4, 6, 6)
    label = torch.randint(0, 4, (1, 6, 6))
    label[0, :, :2] = 255
    for avg_non_ignore in (False, True):
        plain = CrossEntropyLoss(avg_non_ignore=avg_non_ignore)(
            logits, label, ignore_index=255)
        unit = CrossEntropyLoss(class_weight=[1.0] * 4,
                                avg_non_ignore=avg_non_ignore)(
                                    logits, label, ignore_index=255)
        torch.testing.assert_close(unit, plain)


def test_mmseg_cross_entropy_without_the_fix_fails_on_255():
    """The upstream bug the compat fix exists for (mmseg#3734)."""
    from mmseg.models.losses import cross_entropy_loss
    original = cross_entropy_loss.cross_entropy.__wrapped__
    logits = torch.randn(1, 3, 2, 2)
    label = torch.tensor([[[0, 1], [2, 255]]])
    with pytest.raises(IndexError, match='255'):
        original(logits, label, class_weight=torch.ones(3),
                 ignore_index=255)


def test_label_out_of_range_still_fails_in_torch():
    from mmseg.models.losses import CrossEntropyLoss
    label = torch.tensor([[[0, 1], [7, 255]]])
    with pytest.raises(IndexError, match='7'):
        CrossEntropyLoss(class_weight=[1.0] * 3)(
            torch.randn(1, 3, 2, 2), label, ignore_index=255)


@pytest.fixture(scope='module')
def non_square_seg_root(tmp_path_factory):
    """4 train / 2 val 48x64 images whose labels hold 255 strips."""
    root = str(tmp_path_factory.mktemp('non_square'))
    make_embedded_segmentation(root, num_train=4, num_val=2, canvas=64,
                               items_per_image=2, seed=1)
    for path in glob.glob(osp.join(root, '*', '*', '*.png')):
        flag = cv2.IMREAD_UNCHANGED
        array = cv2.imread(path, flag)[:48]
        if '/ann_dir/' in path:
            array[:3] = 255
        assert cv2.imwrite(path, array)
    return root


def test_demo_config_trains_on_255_labels_and_padded_crops(
        non_square_seg_root, tmp_path):
    # 48x64 images in 64x64 crops: the data preprocessor pads the labels
    # with 255; the config's losses use class_weight
    out = run_tool(TRAIN + [
        SEG_CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
        *seg_options(non_square_seg_root, max_iters=2),
        'train_dataloader.dataset.pipeline.2.ratio_range=(1.0,1.0)'
    ]).stdout
    losses = [float(v) for v in re.findall(
        r'Iter\(train\).*? loss: ([0-9.naninf]+)', out)]
    assert len(losses) == 2 and all(np.isfinite(losses)), out[-3000:]
    assert osp.isfile(osp.join(tmp_path, 'iter_2.pth'))


# ---- 2. 16-bit labels -----------------------------------------------------
def _load_label(img_path, label_path, **kwargs):
    from mmdas.datasets.transforms import LoadAnnotationsChecked
    results = dict(img_path=img_path, seg_map_path=label_path,
                   reduce_zero_label=False, seg_fields=[],
                   ori_shape=(8, 8))
    return LoadAnnotationsChecked(num_classes=11, **kwargs)(results)


def test_16_bit_label_with_ids_above_255_names_the_file(tmp_path):
    label = np.zeros((8, 8), np.uint16)
    label[2:4, 2:4] = 266  # read as 10 after mmseg's uint8 cast
    path = str(tmp_path / 'wide.png')
    assert cv2.imwrite(path, label)
    with pytest.raises(ValueError, match=r'wide\.png: label values 0\.\.266 '
                       r'do not fit uint8.*266 as 10'):
        _load_label('img.png', path)


def test_16_bit_label_within_uint8_loads_as_8_bit(tmp_path):
    label = np.zeros((8, 8), np.uint16)
    label[1, 1], label[2, 2] = 10, 255
    wide, narrow = str(tmp_path / 'wide.png'), str(tmp_path / 'narrow.png')
    assert cv2.imwrite(wide, label)
    assert cv2.imwrite(narrow, label.astype(np.uint8))
    a = _load_label('img.png', wide)['gt_seg_map']
    b = _load_label('img.png', narrow)['gt_seg_map']
    assert a.dtype == np.uint8 and np.array_equal(a, b)
    assert a[1, 1] == 10 and a[2, 2] == 255


# ---- 3. non-finite magnitudes and training --------------------------------
@pytest.mark.parametrize('transform, message', [
    (dict(op='identity', magnitude=float('inf')),
     "op 'identity' takes no magnitude"),
    (dict(op='identity', magnitude=1e308), "op 'identity' takes no magnitude"),
    (dict(op='scale', magnitude=1e-30), r"out of range \[0.5, 2.0\]"),
    (dict(op='scale', magnitude=float('inf')), r"out of range \[0.5, 2.0\]"),
    (dict(op='rotate', magnitude=float('nan')), 'out of range'),
])
def test_policy_magnitudes_are_bounded(transform, message):
    from mmdas.policy import build_policy
    with pytest.raises(ValueError,
                       match=r'policy.transforms\[0\].magnitude: .*' +
                       message):
        build_policy(dict(transforms=[transform]))


def test_config_check_refuses_infinite_identity(tmp_path):
    from mmengine.config import Config
    from mmdas.utils import check_config_types
    cfg = Config.fromfile(SEG_CONFIG.replace('plain_', 'das_'))
    cfg.model.data_preprocessor.policy = dict(
        transforms=[dict(op='identity', magnitude=float('inf'))])
    with pytest.raises(ValueError, match="takes no magnitude"):
        check_config_types(cfg)


@pytest.mark.slow  # ~25 s; the quick hook tests below feed NaN losses and α
def test_diverging_training_stops_naming_iteration_and_checkpoint(
        tiny_seg_root, tmp_path):
    # lr 1e30: iteration 1 is finite, the weights it leaves are not usable
    out = run_tool(TRAIN + [
        SEG_CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
        *seg_options(tiny_seg_root, max_iters=6),
        'optim_wrapper.optimizer.lr=1e30',
        'default_hooks.checkpoint.interval=1'
    ], check=False)
    assert out.returncode != 0
    match = re.search(r'Training stopped at iteration (\d+): (\S+) is (nan|'
                      r'inf).*?The last checkpoint, saved before it, is '
                      r'(\S+) ', out.stdout)
    assert match, out.stdout[-3000:]
    stopped = int(match.group(1))
    assert 1 < stopped <= 6
    assert match.group(4).endswith(f'iter_{stopped - 1}.pth')
    assert not osp.exists(osp.join(tmp_path, f'iter_{stopped}.pth'))


def test_finite_training_hook_is_installed_for_training_only():
    from mmengine.config import Config
    from mmdas.utils import use_checkpoint_hooks
    train, test = Config(dict()), Config(dict())
    use_checkpoint_hooks(train)
    use_checkpoint_hooks(test, test=True)
    assert 'FiniteTrainingHook' in [h['type'] for h in train.custom_hooks]
    assert 'FiniteTrainingHook' not in [h['type'] for h in test.custom_hooks]


# ---- 4. a checkpoint of NaN weights is not tested -------------------------
@pytest.mark.slow  # ~25 s; test_coverage_hook_refuses_nan_weights is quick
def test_test_tool_refuses_nan_weights(tiny_seg_root, tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(SEG_CONFIG).model)
    state = model.state_dict()
    name = sorted(k for k in state if k.endswith('conv_seg.weight'))[0]
    state[name][0] = float('nan')
    bad = str(tmp_path / 'nan.pth')
    torch.save(dict(state_dict=state, meta=dict()), bad)
    out = run_tool(TEST + [SEG_CONFIG, bad, '--work-dir', str(tmp_path / 't'),
                           '--cfg-options',
                           *seg_options(tiny_seg_root)], check=False)
    assert out.returncode != 0
    assert (f'The checkpoint {bad} holds non-finite weights, first {name} '
            f'{tuple(state[name].shape)}: {state[name][0].numel()} of '
            f'{state[name].numel()} values are NaN or infinite'
            in out.stdout), out.stdout[-3000:]
    assert 'aAcc' not in out.stdout  # nothing was scored


# ---- 8. policy files that are not policies --------------------------------
DAS_SEG_CONFIG = SEG_CONFIG.replace('plain_', 'das_')


def _das_seg_cfg():
    from mmengine.config import Config
    return Config.fromfile(DAS_SEG_CONFIG)


@pytest.mark.parametrize('kind, problem', [
    ('missing', 'does not exist'),
    ('directory', 'is a directory'),
    ('empty', 'is empty'),
    ('truncated', r'is not valid JSON \(truncated\?\)'),
])
def test_bad_policy_file_names_field_path_and_format(kind, problem,
                                                     tmp_path):
    from mmdas.utils import check_config_types
    path = tmp_path / 'policy.json'
    if kind == 'directory':
        path.mkdir()
    elif kind == 'empty':
        path.write_text('')
    elif kind == 'truncated':
        path.write_text('{"transforms": [{"op": "rotate", "magn')
    cfg = _das_seg_cfg()
    cfg.model.data_preprocessor.policy = str(path)
    with pytest.raises(ValueError) as err:
        check_config_types(cfg)
    message = str(err.value)
    assert message.startswith('model.data_preprocessor.policy')
    assert re.search(f'the policy file {re.escape(str(path))} {problem}',
                     message), message
    assert '"transforms": [{"op": "translate_x"' in message


# ---- 9. every registered type a config names -------------------------------
@pytest.mark.parametrize('section, key, value, close', [
    ('model.decode_head', 'wrapped_type', 'DepthwiseSeparableASPPHaed',
     'DepthwiseSeparableASPPHead'),
    ('train_dataloader.dataset', 'type', 'BaseSegDatset', 'BaseSegDataset'),
    ('val_evaluator', 'type', 'IoUMetrc', 'IoUMetric'),
    ('param_scheduler[0]', 'type', 'LinerLR', 'LinearLR'),
    ('tta_model', 'type', 'SegTTAModl', 'SegTTAModel'),
])
def test_config_check_names_unknown_types(section, key, value, close):
    from mmdas.utils import check_config_types
    cfg = _das_seg_cfg()
    node = cfg
    for part in re.findall(r'\w+|\[\d+\]', section):
        node = node[int(part[1:-1])] if part.startswith('[') else node[part]
    node[key] = value
    with pytest.raises(KeyError) as err:
        check_config_types(cfg)
    message = str(err.value)
    assert f'{section}.{key}={value!r} is not registered' in message
    assert f'Did you mean {close!r}' in message


def test_dataset_pipeline_is_not_checked_as_datasets():
    from mmdas.utils import check_config_types
    check_config_types(_das_seg_cfg())  # pipelines hold transforms, fine


# ---- 10. frames of the policy against the backbone -------------------------
def test_policy_and_backbone_frames_must_agree():
    from mmdas.utils import check_config_types
    cfg = _das_seg_cfg()
    cfg.model.data_preprocessor.policy.num_frames = 6
    frames = cfg.model.backbone.num_frames
    assert frames != 6
    with pytest.raises(ValueError, match=(
            r'model.data_preprocessor.policy makes 6 frames \(policy.'
            rf'num_frames=6\) but model.backbone.num_frames={frames}')):
        check_config_types(cfg)


# ---- 5. images smaller than the output stride -----------------------------
def test_loader_refuses_tiny_image(tmp_path):
    from mmdas.datasets.transforms import LoadImageFromFileChecked
    path = str(tmp_path / 'dot.png')
    assert cv2.imwrite(path, np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ValueError, match=(
            r'dot\.png: image is 1x1 \(HxW\), smaller than the minimum '
            r'8x8')):
        LoadImageFromFileChecked()(dict(img_path=path))
    ok = str(tmp_path / 'ok.png')
    assert cv2.imwrite(ok, np.zeros((8, 9, 3), np.uint8))
    assert LoadImageFromFileChecked()(dict(img_path=ok))['img'].shape == (
        8, 9, 3)
    with pytest.raises(ValueError, match='smaller than the minimum 16x16'):
        LoadImageFromFileChecked(min_size=16)(dict(img_path=ok))


# ---- 11. truncated checkpoint, full disk ----------------------------------
def test_truncated_checkpoint_error_names_the_file(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = str(tmp_path / 'iter_1.pth')
    torch.save(dict(state_dict=dict(w=torch.zeros(1000)), meta={}), path)
    with open(path, 'r+b') as f:
        f.truncate(osp.getsize(path) // 2)
    with pytest.raises(RuntimeError, match=(
            f'{re.escape(path)} is not a readable checkpoint \\(truncated or '
            'damaged, ')):
        _load_checkpoint(path, map_location='cpu')


@pytest.mark.slow  # ~25 s; test_failed_write_removes_partial is quick
def test_failed_checkpoint_write_removes_partial_and_names_path(
        tiny_seg_root, tmp_path):
    # a file size limit stands in for a full disk: the checkpoint (MBs)
    # cannot be written, the logs (KBs) can
    work = str(tmp_path / 'work')
    argv = [TRAIN[1], SEG_CONFIG, '--work-dir', work, '--cfg-options',
            *seg_options(tiny_seg_root, max_iters=2)]
    code = ('import resource, runpy, signal, sys; '
            'signal.signal(signal.SIGXFSZ, signal.SIG_IGN); '
            'resource.setrlimit(resource.RLIMIT_FSIZE, (2 ** 21, 2 ** 21)); '
            f'sys.argv = {argv!r}; '
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    out = run_tool([sys.executable, '-c', code], check=False)
    assert out.returncode != 0
    final = osp.join(work, 'iter_2.pth')
    assert re.search(
        f'OSError: (\\[Errno \\d+\\] )?Writing {re.escape(final)} failed '
        '.*; removed the partial file ' + re.escape(final + '.partial'),
        out.stdout), out.stdout[-3000:]
    assert not [n for n in os.listdir(work) if n.endswith('.partial')]
    assert not osp.exists(final)


# ---- 7. the search's JSON files are written atomically ---------------------
def test_policy_files_are_replaced_atomically(tmp_path, monkeypatch):
    import json
    import logging
    from types import SimpleNamespace
    from mmengine.config import Config
    from mmdas.engine import SearchSelection
    from mmdas.engine.search_selection import (ARGMAX_POLICY_FILE,
                                               POLICY_FILE, SELECTION_FILE,
                                               policy_data)
    from mmdas.models.das_cell import DASCell
    selection = SearchSelection.__new__(SearchSelection)
    selection.cell = DASCell(num_nodes=1, num_frames=4)
    selection.runner = SimpleNamespace(
        logger=logging.getLogger('test'), cfg=Config(dict(model=dict())))

    def record(perturbed, argmax):
        return dict(perturbation=dict(genotype=[perturbed]),
                    argmax=dict(genotype=[argmax]))

    selection.write(str(tmp_path), record('rotate', 'scale'))
    names = sorted([POLICY_FILE, ARGMAX_POLICY_FILE, SELECTION_FILE])
    assert sorted(os.listdir(tmp_path)) == names
    with open(tmp_path / POLICY_FILE) as f:
        assert json.load(f) == policy_data(selection.cell, ['rotate'])
    before = {n: open(tmp_path / n).read() for n in names}

    def fail(*args):  # the kill or full disk between write and rename
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'replace', fail)
    path = str(tmp_path / POLICY_FILE)
    with pytest.raises(OSError, match=f'Writing {re.escape(path)} failed'):
        selection.write(str(tmp_path), record('translate_x', 'identity'))
    # the old files, whole, and no partial file left
    assert {n: open(tmp_path / n).read() for n in names} == before
    assert sorted(os.listdir(tmp_path)) == names


# ---- 6. kill and resume: bit-exact with dropout on -------------------------
# (ordinary training: the quick test_crash_safe_checkpoints.py kill test)
@pytest.mark.slow  # ~70 s: three short searches
def test_killed_search_resumes_bit_exact_with_dropout(tiny_seg_root,
                                                      tmp_path):
    from mmengine.config import Config
    from mmdas.checkpoint_loading import load_checkpoint_file
    tests = osp.dirname(osp.abspath(__file__))
    search = SEG_CONFIG.replace('plain_', 'das_search_')
    configs = {}
    for name, kill in (('full', False), ('killed', True)):
        cfg = Config.fromfile(search)
        assert cfg.model.decode_head.dropout_ratio > 0  # dropout stays on
        if kill:  # SIGKILL at the first iteration after iter_2 is saved
            cfg.custom_imports.imports = ['mmdas', 'kill_points']
            cfg.custom_hooks = list(cfg.custom_hooks) + [
                dict(type='KillDuringSave', step=2, moment='after_save')]
        configs[name] = str(tmp_path / f'{name}.py')
        cfg.dump(configs[name])
    opts = [*seg_options(tiny_seg_root, max_iters=4),
            'das_search.selection.enable=False']

    def train(name, work, *extra, check=True):
        return run_tool(TRAIN + [configs[name], '--work-dir',
                                 str(tmp_path / work), *extra,
                                 '--cfg-options', *opts],
                        check=check, extra_pythonpath=[tests])

    train('full', 'full')
    killed = train('killed', 'resumed', check=False)
    assert killed.returncode == -9, killed.stdout[-3000:]
    assert not (tmp_path / 'resumed' / 'iter_4.pth').exists()
    log = train('full', 'resumed', '--resume').stdout
    assert 'resumed epoch: 0, iter: 2' in log

    def final(work):
        return load_checkpoint_file(str(tmp_path / work / 'iter_4.pth'),
                                    map_location='cpu')

    a, b = final('full'), final('resumed')
    alpha = 'data_preprocessor.cell.alphas'
    assert torch.equal(a['state_dict'][alpha], b['state_dict'][alpha])
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key in a['state_dict']:
        assert torch.equal(a['state_dict'][key], b['state_dict'][key]), key
    assert a['das_search']['history'] == b['das_search']['history']


# ---- 2, 5, 12 in check_dataset: 16-bit label, 1x1 image, symlink loop ------
def test_check_dataset_reports_each_bad_file_and_goes_on(tiny_seg_root,
                                                         tmp_path):
    import shutil
    from mmengine.config import Config
    from mmdas.datasets.checks import check_dataset_config
    root = str(tmp_path / 'data')
    shutil.copytree(tiny_seg_root, root)
    train = osp.join(root, 'img_dir', 'train')
    images = sorted(glob.glob(osp.join(train, '*.png')))
    # 2: a 16-bit label whose id 266 mmseg would read as 10
    wide = images[0].replace('img_dir', 'ann_dir')
    label = cv2.imread(wide, cv2.IMREAD_UNCHANGED).astype(np.uint16)
    label[0, 0] = 266
    assert cv2.imwrite(wide, label)
    # 5: a 1x1 image (and label)
    tiny = images[1]
    assert cv2.imwrite(tiny, np.zeros((1, 1, 3), np.uint8))
    assert cv2.imwrite(tiny.replace('img_dir', 'ann_dir'),
                       np.zeros((1, 1), np.uint8))
    # 12: a symbolic link loop, and a broken file listed after it
    os.symlink('loop_b.png', osp.join(train, 'loop_a.png'))
    os.symlink('loop_a.png', osp.join(train, 'loop_b.png'))
    broken = images[-1]
    open(broken, 'wb').close()
    cfg = Config.fromfile(SEG_CONFIG)
    cfg.train_dataloader.dataset.data_root = root
    report = check_dataset_config(cfg, splits=['train'], progress=False,
                                  log=lambda text: None)
    found = {p.path: p.problem for p in report.problems}
    assert found.pop(wide).startswith(
        'label values 0..266 do not fit uint8'), report.summary()
    assert found.pop(tiny).startswith(
        'image is 1x1 (HxW), smaller than the minimum 8x8')
    for name in ('loop_a.png', 'loop_b.png'):
        assert found.pop(osp.join(train, name)).startswith(
            'symbolic link loop')
    assert found.pop(broken).startswith('does not decode')
    assert not found, report.summary()  # nothing else, no 'cannot be built'


def test_pipeline_policy_is_checked_with_the_config():
    from mmdas.utils import check_config_types
    cfg = _das_seg_cfg()
    frames = cfg.model.backbone.num_frames
    step = dict(type='DASImageToVideo',
                policy=dict(transforms=[dict(op='scale', magnitude=1e-30)]))
    cfg.train_dataloader.dataset.pipeline.insert(2, step)
    with pytest.raises(ValueError, match=(
            r'train_dataloader.dataset.pipeline\[2\].policy.transforms\[0\]'
            r'.magnitude: magnitude 1e-30')):
        check_config_types(cfg)
    step['policy'] = dict(transforms=[dict(op='rotate', magnitude=2.0)],
                          num_frames=frames + 1)
    with pytest.raises(ValueError, match=(
            r'pipeline\[2\].policy makes \d+ frames .* but '
            rf'model.backbone.num_frames={frames}')):
        check_config_types(cfg)


def test_finite_training_hook_stops_on_nan_alpha():
    from types import SimpleNamespace

    from mmengine.logging import MessageHub
    from mmdas.engine import FiniteTrainingHook

    class Cell(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.alphas = torch.nn.Parameter(torch.zeros(1, 3))

    model = torch.nn.Module()
    model.cell = Cell()
    hub = MessageHub.get_instance('finite_hook_test')
    runner = SimpleNamespace(model=model, iter=6, message_hub=hub)
    hook = FiniteTrainingHook()
    hook.before_train(runner)
    hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(1.0)))
    model.cell.alphas.data[0, 1] = float('nan')
    hub.update_info('last_ckpt', 'work/iter_6.pth')
    with pytest.raises(RuntimeError, match=(
            r'Training stopped at iteration 7: the DAS parameter cell.alphas '
            r'holds \[\[0.0, nan, 0.0\]\]\. The last checkpoint, saved '
            r'before it, is work/iter_6.pth')):
        hook.after_train_iter(runner, 0,
                              outputs=dict(loss=torch.tensor(1.0)))


def test_finite_training_hook_stops_on_nan_loss():
    from types import SimpleNamespace

    from mmengine.logging import MessageHub
    from mmdas.engine import FiniteTrainingHook
    runner = SimpleNamespace(
        model=torch.nn.Linear(1, 1), iter=0,
        message_hub=MessageHub.get_instance('finite_hook_loss_test'))
    hook = FiniteTrainingHook()
    hook.before_train(runner)
    hook.after_train_iter(runner, 0, outputs=dict(
        loss=torch.tensor(1.0), acc=torch.tensor(float('nan'))))  # not a loss
    with pytest.raises(RuntimeError, match=(
            r'iteration 1: decode.loss_ce is inf\. No checkpoint was saved '
            r'before it')):
        hook.after_train_iter(runner, 0, outputs=dict(
            loss=torch.tensor(1.0), **{'decode.loss_ce': torch.tensor(
                float('inf'))}))


def test_coverage_hook_refuses_nan_weights():
    from types import SimpleNamespace
    from mmdas.engine import CheckpointCoverageHook
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    state = model.state_dict()
    state['1.weight'][0, 1] = float('inf')
    runner = SimpleNamespace(model=model, _load_from='bad.pth')
    with pytest.raises(ValueError, match=(
            r'The checkpoint bad.pth holds non-finite weights, first '
            r'1.weight \(1, 2\): 1 of 2 values are NaN or infinite')):
        CheckpointCoverageHook(strict=True).after_load_checkpoint(
            runner, dict(state_dict=state))


def test_failed_write_removes_partial(tmp_path):
    from mmdas.engine.safe_checkpoint_hook import partial_removed_on_failure
    final = str(tmp_path / 'iter_2.pth')
    partial = final + '.partial'
    with pytest.raises(OSError) as err:
        with partial_removed_on_failure(partial, final):
            with open(partial, 'wb') as f:
                f.write(b'half a checkpoint')
            raise OSError(28, 'No space left on device')  # torch names none
    assert err.value.errno == 28
    assert (f'Writing {final} failed (OSError: [Errno 28] No space left on '
            f'device); removed the partial file {partial}') in str(err.value)
    assert os.listdir(tmp_path) == []
    # torch's zip writer: a RuntimeError without errno or path
    with pytest.raises(OSError, match=f'Writing {re.escape(final)} failed'):
        with partial_removed_on_failure(partial, final):
            open(partial, 'wb').close()
            raise RuntimeError('[enforce fail at inline_container.cc:672] . '
                               'unexpected pos 704 vs 598')
    assert os.listdir(tmp_path) == []
    with pytest.raises(RuntimeError, match='not a write'):  # left alone
        with partial_removed_on_failure(partial, final):
            raise RuntimeError('not a write')
