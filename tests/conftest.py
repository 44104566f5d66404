"""Shared helpers: tiny embedded data sets and running tools as users do."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import mmdas  # noqa: E402,F401  (compat fixes before anything imports mmseg)
from mmdas.datasets.embedded import (make_embedded_classification,
                                     make_embedded_segmentation)

SEG_CONFIG = osp.join(REPO, 'configs', 'plain_deeplabv3plus_r18_embedded.py')
CLS_CONFIG = osp.join(REPO, 'configs', 'resnet18_embedded_digits_cls.py')


def tool_env(extra_pythonpath=()):
    """Environment for a tool subprocess: this checkout first, 1 thread."""
    env = dict(os.environ)
    paths = [REPO, *extra_pythonpath]
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    env['OMP_NUM_THREADS'] = '1'
    env['MKL_NUM_THREADS'] = '1'
    # `python` in tools/dist_*.sh must be this interpreter
    env['PYTHON'] = sys.executable
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env['PATH']
    return env


def run_tool(cmd, check=True, timeout=600, extra_pythonpath=()):
    """Run ``cmd`` from the repository root; return stdout+stderr text."""
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=tool_env(extra_pythonpath),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{" ".join(map(str, cmd))} exited with {proc.returncode}:\n'
            f'{proc.stdout[-6000:]}')
    return proc


def train_iters(output):
    """``(iter, max_iters)`` of every ``Iter(train) [i/N]`` log line."""
    return [(int(i), int(n))
            for i, n in re.findall(r'Iter\(train\) \[\s*(\d+)/(\d+)\]',
                                   output)]


def seg_options(data_root, max_iters=4, batch_size=2, size=64):
    """``--cfg-options`` that shrink the segmentation job for tests."""
    shape = f'({size},{size})'
    opts = [
        f'train_dataloader.batch_size={batch_size}',
        f'train_dataloader.dataset.pipeline.2.scale={shape}',
        f'train_dataloader.dataset.pipeline.3.crop_size={shape}',
        f'val_dataloader.dataset.pipeline.1.scale={shape}',
        f'test_dataloader.dataset.pipeline.1.scale={shape}',
        f'model.data_preprocessor.size={shape}',
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={max_iters}',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=2',
    ]
    for loader in ('train', 'val', 'test'):
        opts.append(f'{loader}_dataloader.dataset.data_root={data_root}')
    return opts


def cls_options(data_root, max_epochs=1):
    """``--cfg-options`` that shrink the classification job for tests."""
    opts = [
        f'train_cfg.max_epochs={max_epochs}',
        f'train_cfg.val_interval={max_epochs}',
        'train_dataloader.batch_size=8',
        'default_hooks.logger.interval=1',
    ]
    for loader in ('train', 'val', 'test'):
        opts.append(f'{loader}_dataloader.dataset.data_root={data_root}')
    return opts


@pytest.fixture(scope='session')
def tiny_seg_root(tmp_path_factory):
    """8 train / 4 val embedded segmentation images of 64x64."""
    root = str(tmp_path_factory.mktemp('embedded_seg'))
    make_embedded_segmentation(
        root, num_train=8, num_val=4, canvas=64, items_per_image=2, seed=0)
    return root


@pytest.fixture(scope='session')
def tiny_cls_root(tmp_path_factory):
    """40 train / 20 val embedded classification images of 32x32."""
    root = str(tmp_path_factory.mktemp('embedded_cls'))
    make_embedded_classification(root, num_train=40, num_val=20, seed=0)
    return root
