"""The launch scripts run the project's interpreter with mmdas' tools.

``dist_*.sh`` and ``slurm_*.sh`` use ``$PYTHON``, else the project's
``.venv`` when it exists, else ``python``. The scripts run here against a
copy of ``tools/`` whose interpreter (and ``srun``) only record their
command line.
"""
import os
import os.path as osp
import shutil
import subprocess

import pytest

from conftest import REPO

RECORDER = '#!/bin/sh\necho "$0 $*" >> "$RECORD"\n'


def fake_checkout(root, venv):
    """``root/tools`` with the launch scripts; a recording ``.venv``."""
    tools = osp.join(root, 'tools')
    os.makedirs(tools)
    for name in ('find_python.sh', 'dist_train.sh', 'dist_test.sh',
                 'slurm_train.sh', 'slurm_test.sh'):
        shutil.copy(osp.join(REPO, 'tools', name), tools)
    bin_dir = osp.join(root, 'bin')  # `python` and `srun` on PATH
    os.makedirs(bin_dir)
    paths = [osp.join(bin_dir, 'python'), osp.join(bin_dir, 'srun')]
    if venv:
        os.makedirs(osp.join(root, '.venv', 'bin'))
        paths.append(osp.join(root, '.venv', 'bin', 'python'))
    for path in paths:
        with open(path, 'w') as f:
            f.write(RECORDER)
        os.chmod(path, 0o755)
    return tools, bin_dir


def run_script(tools, bin_dir, script, args, record, **env):
    full_env = {
        'PATH': f'{bin_dir}:/usr/bin:/bin', 'RECORD': record, **env}
    subprocess.run(['bash', osp.join(tools, script), *args], env=full_env,
                   check=True, capture_output=True)
    with open(record) as f:
        return f.read().splitlines()


@pytest.mark.parametrize('venv', [True, False])
def test_dist_scripts_pick_the_project_env(tmp_path, venv):
    tools, bin_dir = fake_checkout(str(tmp_path), venv)
    record = str(tmp_path / 'record')
    expected = osp.join(str(tmp_path), '.venv', 'bin', 'python') if venv \
        else osp.join(bin_dir, 'python')
    line, = run_script(tools, bin_dir, 'dist_train.sh',
                       ['cfg.py', '2', '--amp'], record)
    assert line.startswith(f'{expected} -m torch.distributed.run ')
    assert line.endswith(f'--nproc_per_node=2 --master_port=29500 '
                         f'{tools}/train.py cfg.py --launcher pytorch --amp')
    os.remove(record)
    line, = run_script(tools, bin_dir, 'dist_test.sh',
                       ['cfg.py', 'ckpt.pth', '2'], record)
    assert line.startswith(f'{expected} -m torch.distributed.run ')
    assert line.endswith(f'{tools}/test.py cfg.py ckpt.pth --launcher '
                         'pytorch')


def test_python_env_var_wins(tmp_path):
    tools, bin_dir = fake_checkout(str(tmp_path), venv=True)
    record = str(tmp_path / 'record')
    line, = run_script(tools, bin_dir, 'dist_train.sh', ['cfg.py', '1'],
                       record, PYTHON=osp.join(bin_dir, 'python'))
    assert line.startswith(f'{bin_dir}/python -m torch.distributed.run ')


def test_slurm_scripts(tmp_path):
    tools, bin_dir = fake_checkout(str(tmp_path), venv=True)
    record = str(tmp_path / 'record')
    venv_python = osp.join(str(tmp_path), '.venv', 'bin', 'python')
    line, = run_script(tools, bin_dir, 'slurm_train.sh',
                       ['gpu', 'job', 'cfg.py', '--work-dir', 'w d'], record,
                       GPUS='8')
    assert line == (
        f'{bin_dir}/srun -p gpu --job-name=job --gres=gpu:4 --ntasks=8 '
        '--ntasks-per-node=4 --cpus-per-task=5 --kill-on-bad-exit=1 '
        f'{venv_python} -u {tools}/train.py cfg.py --launcher=slurm '
        '--work-dir w d')
    os.remove(record)
    line, = run_script(tools, bin_dir, 'slurm_test.sh',
                       ['gpu', 'job', 'cfg.py', 'ckpt.pth', '--tta'], record)
    assert line.endswith(f'{venv_python} -u {tools}/test.py cfg.py ckpt.pth '
                         '--launcher=slurm --tta')
