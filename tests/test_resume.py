"""An interrupted and resumed run ends exactly where an uninterrupted one
does."""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from fixtures import make_cityscapes, shrink_config
from mmdas.checkpoint_loading import load_checkpoint_file
from test_configs_e2e import CONFIG_DIR, run_train

CONFIG = osp.join(CONFIG_DIR, 'das_deeplabv3plus_cityscapes.py')


def _config(tmp_path, root, max_iters):
    cfg = Config.fromfile(CONFIG)
    shrink_config(cfg, root, iters=4)
    # the schedule is that of a 4-iteration run in both cases; the
    # interrupted run just stops after its checkpoint at iteration 2
    cfg.train_cfg.max_iters = max_iters
    cfg.default_hooks.checkpoint.interval = 2
    # dropout stays on: checkpoints hold the RNG state (RNGStateHook)
    path = str(tmp_path / f'cfg_{max_iters}.py')
    cfg.dump(path)
    return path


def _final(work_dir):
    ckpt = load_checkpoint_file(str(work_dir / 'iter_4.pth'),
                                map_location='cpu')
    return ckpt['state_dict']


@pytest.mark.slow  # ~95 s; the quick kill-and-resume test also checks equality
def test_resumed_run_equals_uninterrupted_run(tmp_path):
    root = make_cityscapes(str(tmp_path / 'cityscapes'), num_train=4)
    full_cfg = _config(tmp_path, root, max_iters=4)
    short_cfg = _config(tmp_path, root, max_iters=2)

    log_full = run_train(full_cfg, tmp_path / 'full')
    run_train(short_cfg, tmp_path / 'resumed')
    assert not (tmp_path / 'resumed' / 'iter_4.pth').exists()
    log_resumed = run_train(full_cfg, tmp_path / 'resumed',
                            '--resume')
    assert re.search(r'resumed (from|epoch: 0, iter: 2)', log_resumed,
                     re.I), log_resumed[-2000:]

    full, resumed = _final(tmp_path / 'full'), _final(tmp_path / 'resumed')
    assert full.keys() == resumed.keys()
    # One process and one thread on the CPU, the random state restored:
    # bit-identical arithmetic
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    miou = [re.findall(r'mIoU: ([0-9.]+)', log)[-1]
            for log in (log_full, log_resumed)]
    assert miou[0] == miou[1]
