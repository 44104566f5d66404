"""Wrong data is named, file by file: ``tools/check_dataset.py``, the checked
loaders of the configs, and empty data sets at build time.

Each test breaks a copy of the tiny embedded set the way real data breaks
(a label of another size, class ids the model lacks, a zero-byte image, a
truncated label, an empty or missing folder, a missing label) and expects
the error or report to name the file.
"""
import glob
import os
import os.path as osp
import re
import runpy
import shutil
import sys

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import CLS_CONFIG, REPO, SEG_CONFIG
from fixtures import (make_cityscapes, make_fashion_mnist, make_imagenet,
                      make_voc_aug)
from mmdas.datasets.checks import (check_dataset_config, label_value_lut,
                                   leaf_dataset_cfgs, seg_label_problems)

NUM_CLASSES = 11  # the embedded digits: background + 10 digits


@pytest.fixture
def seg_root(tiny_seg_root, tmp_path):
    """A private copy of the tiny embedded segmentation set to break."""
    root = str(tmp_path / 'seg')
    shutil.copytree(tiny_seg_root, root)
    return root


@pytest.fixture
def cls_root(tmp_path):
    root = str(tmp_path / 'cls')
    for split in ('train', 'val'):
        for digit in range(2):
            folder = osp.join(root, split, str(digit))
            os.makedirs(folder)
            for i in range(2):
                img = np.full((32, 32, 3), 40 * (i + 1) + digit, np.uint8)
                assert cv2.imwrite(osp.join(folder, f'{i}.png'), img)
    return root


def seg_cfg(root):
    cfg = Config.fromfile(SEG_CONFIG)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = root
    return cfg


def ann(root, split, i=0):
    return osp.join(root, 'ann_dir', split, f'{i:06d}.png')


def img(root, split, i=0):
    return osp.join(root, 'img_dir', split, f'{i:06d}.png')


def truncate(path, keep=60):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:keep])


def problems_of(cfg, **kwargs):
    report = check_dataset_config(cfg, progress=False, log=lambda _: None,
                                  **kwargs)
    return report, {(p.split, p.path): p.problem for p in report.problems}


def build_split(cfg, split):
    """The config's own dataset, with its (checked) pipeline."""
    from mmengine.registry import DATASETS
    init_default_scope('mmseg')
    return DATASETS.build(cfg[f'{split}_dataloader'].dataset)


# ---------------------------------------------------------------------------
# the checker


def test_clean_set_passes_and_reports_rate(seg_root):
    report, problems = problems_of(seg_cfg(seg_root))
    assert problems == {}
    assert report.ok
    # 8 train + 4 val images and labels; test is val's data, read once
    assert report.num_files == 24
    assert 'files/s' in report.summary() and report.files_per_second > 0


def test_every_broken_file_is_named(seg_root):
    # a label of another size (today: stretched to the image, trains, RC 0)
    small = cv2.imread(ann(seg_root, 'train', 0), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(ann(seg_root, 'train', 0), small[:32, :48])
    # class ids the model lacks in a val label (today: mIoU silently moves)
    label = cv2.imread(ann(seg_root, 'val', 1), cv2.IMREAD_UNCHANGED)
    label[5:9, 5:9] = 11
    label[20:22, 20:22] = 200
    cv2.imwrite(ann(seg_root, 'val', 1), label)
    # a zero-byte image and a truncated label (today: a decoder error that
    # names no file)
    open(img(seg_root, 'train', 2), 'wb').close()
    truncate(ann(seg_root, 'train', 3))
    # a colour label and a missing one (today: found at the iteration
    # that reads it)
    cv2.imwrite(ann(seg_root, 'train', 4),
                np.zeros((64, 64, 3), np.uint8) + [0, 1, 2])
    os.remove(ann(seg_root, 'val', 2))

    report, problems = problems_of(seg_cfg(seg_root))
    assert not report.ok
    assert set(problems) == {
        ('train', ann(seg_root, 'train', 0)),
        ('val', ann(seg_root, 'val', 1)),
        ('train', img(seg_root, 'train', 2)),
        ('train', ann(seg_root, 'train', 3)),
        ('train', ann(seg_root, 'train', 4)),
        ('val', ann(seg_root, 'val', 2)),
    }
    assert problems[('train', ann(seg_root, 'train', 0))] == \
        'label is 32x48 (HxW) but its image is 64x64'
    assert problems[('val', ann(seg_root, 'val', 1))] == (
        'label has class ids outside [0, 11) that are not '
        'ignore_index=255: 11, 200')
    assert 'empty file (0 bytes)' in problems[('train',
                                               img(seg_root, 'train', 2))]
    assert 'does not decode' in problems[('train', ann(seg_root, 'train', 3))]
    assert 'not single-channel: shape (64, 64, 3)' in problems[(
        'train', ann(seg_root, 'train', 4))]
    assert problems[('val', ann(seg_root, 'val', 2))] == 'missing file'


def test_empty_and_missing_folders_are_named(seg_root):
    train_imgs = osp.join(seg_root, 'img_dir', 'train')
    for name in os.listdir(train_imgs):
        os.remove(osp.join(train_imgs, name))
    shutil.rmtree(osp.join(seg_root, 'ann_dir', 'val'))
    _, problems = problems_of(seg_cfg(seg_root))
    key = ('train', f'img_path={train_imgs}, seg_map_path='
           f'{osp.join(seg_root, "ann_dir", "train")}')
    assert problems[key].startswith('BaseSegDataset has no samples')
    assert problems[('val', osp.join(seg_root, 'ann_dir', 'val'))] == \
        'label folder missing (4 labels expected)'
    assert len(problems) == 2  # one line per folder, not per file

    shutil.rmtree(osp.join(seg_root, 'img_dir', 'val'))
    _, problems = problems_of(seg_cfg(seg_root), splits=('val', ))
    (where, problem), = problems.items()
    assert problem.startswith('BaseSegDataset cannot be built: '
                              'FileNotFoundError')
    assert osp.join(seg_root, 'img_dir', 'val') in problem


def test_label_ids_are_checked_after_reduce_zero_label_and_label_map():
    label = np.array([[0, 1], [2, 255]], np.uint8)
    # reduce_zero_label: 0 -> 255 (ignored), 1 -> 0, 2 -> 1
    assert seg_label_problems(label, (2, 2), 2, 255,
                              label_value_lut(True, None)) == []
    assert seg_label_problems(label, (2, 2), 1, 255,
                              label_value_lut(True, None)) == [
                                  'label has class ids outside [0, 1) that '
                                  'are not ignore_index=255: 2'
                              ]
    # label_map 2 -> 0: every id fits one class
    assert seg_label_problems(label, (2, 2), 2, 255,
                              label_value_lut(False, {2: 0})) == []
    # 16-bit labels wrap in mmseg's uint8 cast
    wide = np.array([[0, 300]], np.uint16)
    assert 'do not fit uint8' in seg_label_problems(
        wide, (1, 2), 2, 255, label_value_lut(False, None))[0]


def test_classification_set(cls_root):
    broken = osp.join(cls_root, 'val', '1', '0.png')
    truncate(broken)
    cfg = Config.fromfile(CLS_CONFIG)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = cls_root
    report, problems = problems_of(cfg)
    assert list(problems) == [('val', broken)]
    assert report.num_files == 8


def run_main(script, args, capsys, monkeypatch):
    """Run a tool's ``main()`` in this process; return (status, stdout)."""
    monkeypatch.setattr(sys, 'argv', [script, *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(osp.join(REPO, 'tools', script), run_name='__main__')
    return exit_info.value.code, capsys.readouterr().out


def test_tool_and_train_check_data_exit_non_zero(seg_root, tmp_path, capsys,
                                                 monkeypatch):
    open(img(seg_root, 'val', 0), 'wb').close()
    opts = [f'{s}_dataloader.dataset.data_root={seg_root}'
            for s in ('train', 'val', 'test')]
    status, out = run_main('check_dataset.py',
                           [SEG_CONFIG, '--cfg-options', *opts], capsys,
                           monkeypatch)
    assert status == 1, out
    assert f'[val] {img(seg_root, "val", 0)}: does not decode: empty file' \
        in out
    assert '1 problem(s)' in out and 'files/s' in out

    work_dir = str(tmp_path / 'work')
    status, out = run_main('train.py', [
        SEG_CONFIG, '--check-data', '--work-dir', work_dir, '--cfg-options',
        *opts
    ], capsys, monkeypatch)
    assert status == 1, out
    assert img(seg_root, 'val', 0) in out
    assert not osp.exists(work_dir)  # stopped before the runner was built


# ---------------------------------------------------------------------------
# at run time: the configs' checked loaders and dataset build


def test_wrong_size_label_raises_naming_the_file(seg_root):
    small = cv2.imread(ann(seg_root, 'train', 1), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(ann(seg_root, 'train', 1), small[:40])
    cfg = seg_cfg(seg_root)
    dataset = build_split(cfg, 'train')
    dataset[0]  # a good sample loads
    with pytest.raises(ValueError) as err:
        dataset[1]
    assert str(err.value) == (f'{ann(seg_root, "train", 1)}: label is 40x64 '
                              '(HxW) but its image is 64x64')
    # in the test pipeline the label is loaded after Resize: compared with
    # the image's original size, so a good label still passes
    cv2.imwrite(ann(seg_root, 'val', 0), small[:40])
    val = build_split(cfg, 'val')
    assert val[1]['data_samples'].gt_sem_seg.data.shape[-2:] == (64, 64)
    with pytest.raises(ValueError, match=ann(seg_root, 'val', 0)):
        val[0]


@pytest.mark.parametrize('broken', ['zero_byte_image', 'truncated_label',
                                    'missing_label', 'label_id'])
def test_broken_file_raises_naming_it(seg_root, broken):
    path = {
        'zero_byte_image': img(seg_root, 'val', 2),
        'truncated_label': ann(seg_root, 'val', 2),
        'missing_label': ann(seg_root, 'val', 2),
        'label_id': ann(seg_root, 'val', 2),
    }[broken]
    if broken == 'zero_byte_image':
        open(path, 'wb').close()
    elif broken == 'truncated_label':
        truncate(path)
    elif broken == 'missing_label':
        os.remove(path)
    else:
        label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        label[0, 0] = NUM_CLASSES
        cv2.imwrite(path, label)
    dataset = build_split(seg_cfg(seg_root), 'val')
    with pytest.raises((OSError, ValueError)) as err:
        dataset[2]
    assert str(err.value).startswith(f'{path}: ')


def test_checked_image_loader_in_classification_config(cls_root):
    broken = osp.join(cls_root, 'train', '0', '1.png')
    open(broken, 'wb').close()
    from mmengine.registry import DATASETS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(CLS_CONFIG)
    cfg.train_dataloader.dataset.data_root = cls_root
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    index = [dataset.get_data_info(i)['img_path']
             for i in range(len(dataset))].index(broken)
    with pytest.raises(OSError, match=f'^{broken}: does not decode'):
        dataset[index]


def test_empty_training_folder_fails_at_build_naming_it(seg_root):
    train_imgs = osp.join(seg_root, 'img_dir', 'train')
    for name in os.listdir(train_imgs):
        os.remove(osp.join(train_imgs, name))
    # today: "need at least one array to concatenate"
    with pytest.raises(ValueError) as err:
        build_split(seg_cfg(seg_root), 'train')
    assert str(err.value).startswith(
        f'BaseSegDataset found no samples in img_path={train_imgs}')


# ---------------------------------------------------------------------------
# every dataset layout the shipped configs read


def _break_first(pattern):
    def breaker(root):
        path = sorted(glob.glob(osp.join(root, pattern), recursive=True))[0]
        truncate(path)
        return path
    return breaker


LAYOUTS = {
    'plain_deeplabv3plus_cityscapes': (
        lambda r: make_cityscapes(r, num_train=2, num_val=1),
        _break_first('gtFine/val/**/*.png'), 2 * 2 + 2 * 1),
    'plain_deeplabv3plus_voc12aug': (
        make_voc_aug, _break_first('JPEGImages/2007_aug*.jpg'),
        2 * (2 + 2) + 2 * 1),
    'plain_resnet50_imagenet': (make_imagenet,
                                _break_first('val/*.JPEG'), 4 + 4),
    # in memory: labels are checked, there are no files to decode
    'plain_resnet18_fashionmnist': (make_fashion_mnist, None, 0),
}


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_shipped_dataset_layouts(name, tmp_path):
    write, breaker, num_files = LAYOUTS[name]
    root = str(tmp_path / 'data')
    write(root)
    cfg = Config.fromfile(osp.join(REPO, 'configs', f'{name}.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for dataset in leaf_dataset_cfgs(cfg[loader].dataset):
            dataset.data_root = root
    report, problems = problems_of(cfg)
    assert problems == {} and report.num_files == num_files
    if breaker is not None:
        broken = breaker(root)
        _, problems = problems_of(cfg)
        assert [path for _, path in problems] == [broken]
        assert 'does not decode' in list(problems.values())[0]


def test_mixing_doc_block_is_the_shipped_one():
    """docs/mixing_das.md's checked-loading block is what the Cityscapes
    config runs (tested end to end in test_configs_e2e.py)."""
    with open(osp.join(REPO, 'docs', 'mixing_das.md')) as f:
        text = f.read()
    block = re.search(r'## Checked loading.*?```python\n(.*?)```', text,
                      re.S).group(1)
    with open(osp.join(REPO, 'configs',
                       'plain_deeplabv3plus_cityscapes.py')) as f:
        assert block in f.read()
