"""tools/train.py and tools/test.py, run as subprocesses like a user would,
on the shipped mmseg and mmpretrain configs with tiny embedded data."""
import glob
import os
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest

import mmdas  # noqa: F401  (installs the checkpoint loader used below)
from conftest import (CLS_CONFIG, SEG_CONFIG, cls_options, run_tool,
                      seg_options, train_iters)

TRAIN = [sys.executable, osp.join('tools', 'train.py')]
TEST = [sys.executable, osp.join('tools', 'test.py')]


def load_ckpt(path):
    # mmengine's loader, i.e. the allow-listed weights_only=True scheme
    # `import mmdas` registered; plain torch.load would refuse mmengine's
    # pickles
    from mmengine.runner.checkpoint import _load_checkpoint
    return _load_checkpoint(path, map_location='cpu')


@pytest.fixture(scope='module')
def seg_run(tiny_seg_root, tmp_path_factory):
    """Train 4 iterations, then resume the same work_dir up to 6."""
    work_dir = str(tmp_path_factory.mktemp('seg_work'))
    first = run_tool(TRAIN + [
        SEG_CONFIG, '--work-dir', work_dir, '--cfg-options',
        *seg_options(tiny_seg_root, max_iters=4)
    ]).stdout
    first_ckpts = sorted(os.listdir(work_dir))
    first_iter4 = load_ckpt(osp.join(work_dir, 'iter_4.pth'))
    resumed = run_tool(TRAIN + [
        SEG_CONFIG, '--work-dir', work_dir, '--resume', '--cfg-options',
        *seg_options(tiny_seg_root, max_iters=6)
    ]).stdout
    return dict(
        work_dir=work_dir,
        first=first,
        first_files=first_ckpts,
        first_iter4=first_iter4,
        resumed=resumed)


def test_train_writes_checkpoints(seg_run):
    assert train_iters(seg_run['first']) == [(i, 4) for i in range(1, 5)]
    files = seg_run['first_files']
    assert 'iter_2.pth' in files and 'iter_4.pth' in files
    assert 'last_checkpoint' in files
    ckpt = seg_run['first_iter4']
    assert ckpt['meta']['iter'] == 4
    assert 'decode_head.conv_seg.weight' in ckpt['state_dict']
    assert ckpt['state_dict']['decode_head.conv_seg.weight'].shape[0] == 11
    # validation ran at the end of training
    assert re.search(r'Iter\(val\) \[4/4\].*mIoU', seg_run['first'])


def test_resume_continues_from_last_checkpoint(seg_run):
    out = seg_run['resumed']
    assert 'resumed epoch: 0, iter: 4' in out
    # iterations 5 and 6 only: a restart would log [1/6] again
    assert train_iters(out) == [(5, 6), (6, 6)]
    work_dir = seg_run['work_dir']
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read().strip() == osp.join(work_dir, 'iter_6.pth')
    final = load_ckpt(osp.join(work_dir, 'iter_6.pth'))
    assert final['meta']['iter'] == 6
    # the optimizer state carried over: momentum buffers exist and moved on
    key = 'decode_head.conv_seg.weight'
    before = seg_run['first_iter4']['state_dict'][key]
    assert not np.allclose(before.numpy(), final['state_dict'][key].numpy())
    assert final['optimizer']['state']


def test_test_tool_reports_miou_and_writes_outputs(seg_run, tiny_seg_root,
                                                   tmp_path):
    ckpt = osp.join(seg_run['work_dir'], 'iter_6.pth')
    out_dir = str(tmp_path / 'pred')
    show_dir = str(tmp_path / 'show')
    out = run_tool(TEST + [
        SEG_CONFIG, ckpt, '--work-dir', str(tmp_path / 'work'), '--out',
        out_dir, '--show-dir', show_dir, '--cfg-options',
        *seg_options(tiny_seg_root)
    ]).stdout
    assert f'Load checkpoint from {ckpt}' in out
    match = re.search(r'Iter\(test\) \[4/4\].*mIoU: (\d+\.\d+)', out)
    assert match, out[-3000:]
    # per-class table: background + 10 digits
    assert re.search(r'\|\s*digit_9\s*\|', out)

    # one prediction per validation image, of its size
    labels_dir = osp.join(tiny_seg_root, 'ann_dir', 'val')
    preds = sorted(os.listdir(out_dir))
    assert preds == sorted(os.listdir(labels_dir)) and len(preds) == 4
    # the printed mIoU is the mIoU of the written predictions against the
    # labels, computed here independently (ignore_index 255 left out)
    inter, union = np.zeros(11), np.zeros(11)
    for name in preds:
        pred = cv2.imread(osp.join(out_dir, name), cv2.IMREAD_UNCHANGED)
        label = cv2.imread(osp.join(labels_dir, name), cv2.IMREAD_UNCHANGED)
        assert pred.shape == label.shape == (64, 64) and pred.max() <= 10
        valid = label != 255
        for c in range(11):
            p, g = (pred == c) & valid, (label == c) & valid
            inter[c] += (p & g).sum()
            union[c] += (p | g).sum()
    with np.errstate(invalid='ignore'):
        miou = 100 * np.nanmean(inter / union)
    assert abs(float(match.group(1)) - miou) < 0.006, (match.group(1), miou)

    shown = glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True)
    assert len(shown) == 4, shown
    assert cv2.imread(shown[0]).ndim == 3


def test_misspelt_component_fails_clearly(tiny_seg_root, tmp_path):
    proc = run_tool(
        TRAIN + [
            SEG_CONFIG, '--work-dir',
            str(tmp_path), '--cfg-options',
            *seg_options(tiny_seg_root), 'model.backbone.type=ResNetV1cc'
        ],
        check=False)
    assert proc.returncode != 0
    out = proc.stdout
    assert 'KeyError' in out
    assert "model.backbone.type='ResNetV1cc' is not registered" in out
    assert "Did you mean 'ResNetV1c'" in out
    # it failed in the config check, before any training
    assert 'Iter(train)' not in out


@pytest.fixture(scope='module')
def cls_run(tiny_cls_root, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('cls_work'))
    out = run_tool(TRAIN + [
        CLS_CONFIG, '--work-dir', work_dir, '--cfg-options',
        *cls_options(tiny_cls_root)
    ]).stdout
    return dict(work_dir=work_dir, out=out)


def _val_accuracy(out):
    match = re.search(r'Epoch\(val\) \[1\]\[\d+/\d+\]\s+accuracy/top1: '
                      r'(\d+\.\d+)', out)
    assert match, out[-3000:]
    return float(match.group(1))


def test_mmpretrain_config_trains(cls_run):
    out = cls_run['out']
    # 40 images / batch 8 = 5 iterations in the one epoch, in order
    steps = re.findall(r'Epoch\(train\)\s+\[1\]\[(\d)/5\].*? loss: (\S+)',
                       out)
    assert [int(i) for i, _ in steps] == [1, 2, 3, 4, 5]
    # a fresh 10-class head predicts about uniformly: loss ~ ln 10 at first
    assert abs(float(steps[0][1]) - np.log(10)) < 0.2 * np.log(10), steps
    # 20 validation images, one prediction each: a multiple of 5 %
    accuracy = _val_accuracy(out)
    assert accuracy / 5 == pytest.approx(round(accuracy / 5), abs=1e-6)
    ckpt = load_ckpt(osp.join(cls_run['work_dir'], 'epoch_1.pth'))
    assert ckpt['meta']['epoch'] == 1
    assert ckpt['state_dict']['head.fc.weight'].shape == (10, 512)


def test_mmpretrain_config_tests(cls_run, tiny_cls_root, tmp_path):
    ckpt = osp.join(cls_run['work_dir'], 'epoch_1.pth')
    dump = str(tmp_path / 'preds.pkl')
    out = run_tool(TEST + [
        CLS_CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'work'), '--out', dump, '--cfg-options',
        *cls_options(tiny_cls_root)
    ]).stdout
    match = re.search(r'Epoch\(test\) \[\d+/\d+\]\s+accuracy/top1: '
                      r'(\d+\.\d+)', out)
    assert match, out[-3000:]
    import pickle
    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 20
    assert preds[0]['pred_score'].shape == (10, )
    # the printed accuracy is that of the dumped predictions, and (the test
    # set is the validation set) the one validation printed after training
    right = [int(p['pred_label'][0]) == int(p['gt_label'][0]) for p in preds]
    assert float(match.group(1)) == pytest.approx(100 * np.mean(right),
                                                  abs=1e-3)
    assert float(match.group(1)) == pytest.approx(
        _val_accuracy(cls_run['out']), abs=1e-3)
    assert all(int(p['pred_label'][0]) == int(np.argmax(p['pred_score']))
               for p in preds)


# slow: README's main command end to end (pretraining, training, test,
# pictures), about a minute; the quick suite trains the demo config itself
# in test_bad_inputs.py and checks its pieces in this file
@pytest.mark.slow
def test_run_demo_end_to_end(tmp_path):
    data_root = str(tmp_path / 'data')
    work_dir = str(tmp_path / 'demo')
    out = run_tool([
        sys.executable,
        osp.join('tools', 'run_demo.py'), '--data-root', data_root,
        '--work-dir', work_dir, '--num-train', '4', '--num-val', '2',
        '--size', '64', '--pretrain',
        '--cls-data-root', str(tmp_path / 'cls'),
        '--num-train-cls', '20', '--num-val-cls', '10',
        '--pretrain-cfg-options', 'train_cfg.max_epochs=1',
        '--cfg-options', *seg_options(data_root, max_iters=2)
    ]).stdout
    assert osp.isfile(osp.join(data_root, 'img_dir', 'train', '000003.png'))
    # the backbone is first trained as a digits classifier (mmpretrain),
    # then its 2D checkpoint is loaded into the segmentor's GSF backbone
    assert re.search(r'Epoch\(val\) \[1\]\[\d+/\d+\]\s+accuracy/top1', out)
    assert osp.isfile(osp.join(work_dir, 'pretrain', 'epoch_1.pth'))
    assert re.search(r'GSFResNetV1c: loaded \d+ tensors from .*epoch_1\.pth',
                     out)
    assert train_iters(out) == [(1, 2), (2, 2)]
    assert sorted(os.listdir(osp.join(work_dir, 'predictions'))) == [
        '000000.png', '000001.png'
    ]
    # titled frames (T=4) above image, ground truth and fused prediction,
    # upsampled; the GIF shows each frame beside the fused prediction
    from PIL import Image

    from mmdas.visualization import DPI, PANEL_INCHES
    picture = cv2.imread(osp.join(work_dir, 'sample_prediction.png'))
    assert picture.shape[0] >= 2 * PANEL_INCHES * DPI
    assert picture.shape[1] >= 4 * PANEL_INCHES * DPI
    assert Image.open(osp.join(work_dir, 'sample_prediction.gif')).n_frames \
        == 4
    assert 'IoU per class on the test split:' in out
    assert re.search(r'^  digit_9 +(\d+\.\d\d|nan)', out, re.M)
    assert osp.join(work_dir, 'sample_prediction.gif') in out
    last = out.strip().splitlines()[-1]
    match = re.fullmatch(
        r'FINAL mIoU \(test split, das_deeplabv3plus_r18_embedded\.py\): '
        r'(\d+\.\d\d)', last)
    assert match, last
    # the printed number is the one test.py logged
    logged = re.findall(r'Iter\(test\) \[2/2\].*mIoU: (\d+\.\d+)', out)
    assert logged and float(logged[-1]) == pytest.approx(
        float(match.group(1)), abs=0.01)
