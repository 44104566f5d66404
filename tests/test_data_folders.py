"""A first run without its data: the embedded set is written on first use,
any other missing data folder ends the run with one line (issue 21.10)."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

import mmdas  # noqa: F401
from conftest import REPO, tool_env
from mmdas.datasets import embedded
from mmdas.utils.launch import MissingDataError, ensure_data_folders

SEARCH = osp.join(REPO, 'configs', 'das_search_deeplabv3plus_r18_embedded.py')


def test_embedded_set_is_written_on_first_use(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the README's search command on a fresh clone: data/embedded_digits
    # missing; a tiny set stands in for the demo's 4000 images
    monkeypatch.setitem(embedded.EMBEDDED_SETS, 'data/embedded_digits',
                        ('seg', dict(num_train=3, num_val=2, canvas=32)))
    cfg = Config.fromfile(SEARCH)
    ensure_data_folders(cfg, ('train', 'val'))
    root = tmp_path / 'data' / 'embedded_digits'
    assert len(os.listdir(root / 'img_dir' / 'train')) == 3
    assert len(os.listdir(root / 'ann_dir' / 'val')) == 2
    marker = root / embedded.MARKER
    stamp = marker.stat().st_mtime_ns
    ensure_data_folders(cfg, ('train', 'val'))  # present: not written again
    assert marker.stat().st_mtime_ns == stamp
    # someone's own set in that folder is never overwritten
    os.rename(root / 'img_dir' / 'val', root / 'img_dir' / 'val_moved')
    with pytest.raises(MissingDataError,
                       match=r'data/embedded_digits/img_dir/val does not '
                       r'exist; make it with python tools/make_embedded_'
                       r'dataset.py --task seg --root data/embedded_digits'):
        ensure_data_folders(cfg, ('val', ))
    # nor written by the ranks of a distributed launch at once
    cfg.val_dataloader.dataset.data_root = 'data/embedded_digits_cls48'
    with pytest.raises(MissingDataError, match='embedded_digits_cls48'):
        ensure_data_folders(cfg, ('val', ), generate=False)


def test_missing_data_root_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    """tools/train.py on a config whose data is not there (Cityscapes in a
    fresh folder): exit status 1 and one line naming the folder and how to
    make it, instead of mmengine's FileNotFoundError traceback."""
    config = osp.join(REPO, 'configs', 'das_deeplabv3plus_cityscapes.py')
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), config],
        cwd=tmp_path, env=tool_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr + proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        'tools/train.py: train_dataloader.dataset (CityscapesDataset): '
        "data/cityscapes/ does not exist; download Cityscapes (leftImg8bit, "
        "gtFine) and run mmseg's tools/dataset_converters/cityscapes.py on "
        'it.')
    # a split folder missing under an existing root is named too
    (tmp_path / 'data' / 'cityscapes' / 'leftImg8bit' / 'train').mkdir(
        parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingDataError, match=r'gtFine/train does not'):
        ensure_data_folders(Config.fromfile(config))
