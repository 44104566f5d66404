"""A lost rank ends a distributed run with an error naming it.

The process group gets a timeout (``env_cfg.dist_cfg.timeout``,
``$MMDAS_DIST_TIMEOUT``, default 10 minutes), and ``report_lost_ranks``
names the rank that stopped answering.
"""
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import pytest
from mmengine.config import Config

from conftest import REPO, SEG_CONFIG, seg_options, tool_env
from mmdas.utils import (prepare_cfg_for_launch, report_lost_ranks,
                         resolve_dist_timeout)
from mmdas.utils.launch import DEFAULT_DIST_TIMEOUT
from mmdas.utils.lost_ranks import is_peer_failure


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_timeout_default_config_and_env(monkeypatch):
    monkeypatch.delenv('MMDAS_DIST_TIMEOUT', raising=False)
    assert resolve_dist_timeout(Config({})) == DEFAULT_DIST_TIMEOUT == 600
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='gloo',
                                                  timeout=90))))
    assert resolve_dist_timeout(cfg) == 90
    monkeypatch.setenv('MMDAS_DIST_TIMEOUT', '12')
    assert resolve_dist_timeout(cfg) == 12
    # a launched run carries it to mmengine's init_dist (CUDA) too
    cfg = prepare_cfg_for_launch(cfg, 'slurm')
    assert cfg.env_cfg.dist_cfg.timeout == 12
    monkeypatch.setenv('MMDAS_DIST_TIMEOUT', '0')
    with pytest.raises(ValueError, match=r"\$MMDAS_DIST_TIMEOUT='0'"):
        resolve_dist_timeout(cfg)
    monkeypatch.delenv('MMDAS_DIST_TIMEOUT')
    with pytest.raises(ValueError, match="env_cfg.dist_cfg.timeout='2h'"):
        resolve_dist_timeout(
            Config(dict(env_cfg=dict(dist_cfg=dict(timeout='2h')))))


def test_only_backend_failures_are_diagnosed():
    assert is_peer_failure(RuntimeError(
        '[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/'
        'unbound_buffer.cc:129] Timed out waiting 10000ms for send operation '
        'to complete'))
    assert is_peer_failure(RuntimeError(
        '[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection '
        'closed by peer [127.0.0.1]:4242'))
    # a rank's own errors pass through: no barrier the others never join
    assert not is_peer_failure(RuntimeError(
        'DataLoader timed out after 60 seconds'))
    assert not is_peer_failure(OSError('data/x.png: does not decode'))


def test_not_distributed_passes_errors_through():
    with pytest.raises(KeyError, match='plain'):
        with report_lost_ranks(Config({})):
            raise KeyError('plain')


_WORKER = r'''
import datetime, os, signal, sys, types, torch, torch.distributed as dist
# mmdas.utils without mmdas/__init__ (which imports mmseg: slow to start)
sys.modules['mmdas'] = types.ModuleType('mmdas')
sys.modules['mmdas'].__path__ = [os.path.join({repo!r}, 'mmdas')]
from mmengine.config import Config
from mmdas.utils import report_lost_ranks
rank = int(os.environ['RANK'])
dist.init_process_group('gloo', rank=rank, world_size=2,
                        timeout=datetime.timedelta(seconds=3))
cfg = Config(dict(env_cfg=dict(dist_cfg=dict(timeout=3))))
with report_lost_ranks(cfg):
    dist.all_reduce(torch.ones(4))  # both ranks alive: passes
    if rank == 1:
        os.kill(os.getpid(), signal.SIGSTOP)
    dist.all_reduce(torch.ones(4))
'''


def test_stopped_rank_is_named_by_the_survivor(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(_WORKER.format(repo=REPO))
    env = dict(tool_env(), MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(free_port()), WORLD_SIZE='2')
    procs = [
        subprocess.Popen([sys.executable, str(script)],
                         env=dict(env, RANK=str(r)), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for r in (0, 1)
    ]
    try:
        start = time.monotonic()
        out, _ = procs[0].communicate(timeout=120)
        elapsed = time.monotonic() - start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    assert procs[0].returncode != 0, out
    assert 'RuntimeError: rank 0: a collective with the other ranks failed ' \
        'after waiting up to 3 s' in out, out
    assert 'lost rank(s) [1]: stopped, killed or stuck' in out, out
    # the 3 s collective timeout, a 3 s barrier and start-up; not forever
    assert elapsed < 90


@pytest.mark.slow
def test_dist_train_with_a_stopped_rank_ends(tiny_seg_root, tmp_path):
    """``dist_train.sh`` with rank 1 SIGSTOPped before its second iteration
    (tests/stop_rank_hook.py): rank 0 fails after the timeout naming rank 1,
    and torchrun ends the run (it SIGKILLs the stopped rank after its 30 s
    grace)."""
    config = tmp_path / 'stop_cfg.py'
    config.write_text(
        f'_base_ = [{SEG_CONFIG!r}]\n'
        "custom_imports = dict(imports=['mmdas', 'stop_rank_hook'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='StopRankHook', rank=1, iter=1)]\n")
    env = tool_env([osp.join(REPO, 'tests')])
    env.update(MMDAS_DIST_TIMEOUT='5', PORT=str(free_port()))
    cmd = ['bash', osp.join('tools', 'dist_train.sh'), str(config), '2',
           '--work-dir', str(tmp_path / 'work'), '--cfg-options',
           *seg_options(tiny_seg_root, max_iters=4, batch_size=2)]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=400)
    elapsed = time.monotonic() - start
    out = proc.stdout
    assert proc.returncode != 0, out[-4000:]
    assert 'Iter(train) [1/4]' in out  # both ranks trained, then one stopped
    assert 'Iter(train) [2/4]' not in out
    assert 'rank 0: a collective with the other ranks failed after waiting ' \
        'up to 5 s' in out, out[-4000:]
    assert 'lost rank(s) [1]' in out, out[-4000:]
    assert elapsed < 300
