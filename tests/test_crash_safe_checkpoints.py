"""A training process SIGKILLed while it saves a checkpoint resumes to the
weights of an uninterrupted run (SafeCheckpointHook), and ``--resume`` falls
back past an empty pointer or a truncated newest checkpoint.

The kills are made deterministic by ``tests/kill_points.py``, a test-only hook
that dies half-way through the write of the checkpoint or of
``last_checkpoint``.
"""
import logging
import os
import os.path as osp
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub

from conftest import SEG_CONFIG, run_tool, train_iters
from fixtures import shrink_config
from mmdas.checkpoint_loading import (UntrustedCheckpointError,
                                      load_checkpoint_file)
from mmdas.engine import SafeCheckpointHook, safe_checkpoint_hook
from mmdas.engine.safe_checkpoint_hook import PARTIAL_SUFFIX, \
    write_text_atomic

TESTS = osp.dirname(osp.abspath(__file__))
MAX_ITERS = 6


def _config(tmp_path, data_root, name, max_keep=1, kill=None):
    """The embedded DeepLabV3+ for 6 iterations, a checkpoint every 2;
    ``kill=(step, moment)`` adds the test-only KillDuringSave hook."""
    cfg = Config.fromfile(SEG_CONFIG)
    shrink_config(cfg, data_root, iters=MAX_ITERS)
    # mmengine's hook, as mmseg's default_runtime.py sets it: tools/train.py
    # must make it the crash-safe one
    cfg.default_hooks.checkpoint.type = 'CheckpointHook'
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.checkpoint.max_keep_ckpts = max_keep
    # dropout stays on: the checkpoint holds the RNG state (RNGStateHook)
    assert cfg.model.decode_head.dropout_ratio > 0
    if kill is not None:
        cfg.custom_imports.imports = ['mmdas', 'kill_points']
        cfg.custom_hooks = [
            dict(type='KillDuringSave', step=kill[0], moment=kill[1])
        ]
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


def _train(config, work_dir, *extra, check=True):
    return run_tool([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work_dir), *extra
    ], check=check, extra_pythonpath=[TESTS])


def _weights(path):
    return load_checkpoint_file(str(path), map_location='cpu')['state_dict']


def _assert_same_weights(expected, actual):
    assert expected.keys() == actual.keys()
    # one process, one thread, the random state restored: bit-identical
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


@pytest.fixture(scope='module')
def uninterrupted(tiny_seg_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('uninterrupted')
    _train(_config(tmp, tiny_seg_root, 'full'), tmp / 'work')
    return _weights(tmp / 'work' / f'iter_{MAX_ITERS}.pth')


def _snapshot(work_dir):
    """The files of a work dir and what its pointer says, after the kill."""
    with open(work_dir / 'last_checkpoint') as f:
        return dict(files=sorted(os.listdir(work_dir)), pointer=f.read())


def _kill_then_resume(tmp_path, data_root, kill, max_keep=1,
                      between=None):
    """Run until the kill, check it was one, optionally damage the work dir
    (``between(work_dir)``), resume; return the work dir and both logs."""
    work_dir = tmp_path / 'work'
    killed = _train(
        _config(tmp_path, data_root, 'killed', max_keep, kill), work_dir,
        check=False)
    assert killed.returncode == -9, killed.stdout[-3000:]
    if between is not None:
        between(work_dir)
    resumed = _train(_config(tmp_path, data_root, 'full', max_keep),
                     work_dir, '--resume').stdout
    return work_dir, killed.stdout, resumed


def test_kill_while_writing_checkpoint_keeps_the_previous_one(
        uninterrupted, tiny_seg_root, tmp_path):
    """max_keep_ckpts=1, killed half-way through writing iter_4: iter_2 is
    still there and the resumed run ends where an uninterrupted one does."""
    seen = {}
    work_dir, _, resumed = _kill_then_resume(
        tmp_path, tiny_seg_root, (4, 'checkpoint'),
        between=lambda work_dir: seen.update(_snapshot(work_dir)))
    # the half-written bytes went to the partial file, not to iter_4.pth,
    # and the old checkpoint was not deleted first
    assert 'iter_2.pth' in seen['files']
    assert 'iter_4.pth' not in seen['files']
    assert f'iter_4.pth{PARTIAL_SUFFIX}' in seen['files']
    assert seen['pointer'] == str(work_dir / 'iter_2.pth')
    assert 'resumed epoch: 0, iter: 2' in resumed
    assert train_iters(resumed) == [(i, MAX_ITERS) for i in range(3, 7)]
    _assert_same_weights(uninterrupted,
                         _weights(work_dir / f'iter_{MAX_ITERS}.pth'))
    # max_keep_ckpts=1 still holds, and the partial file is gone
    assert sorted(f for f in os.listdir(work_dir)
                  if f.startswith('iter_')) == [f'iter_{MAX_ITERS}.pth']


@pytest.mark.slow
def test_kill_while_writing_pointer_keeps_it_intact(uninterrupted,
                                                    tiny_seg_root, tmp_path):
    """Killed while ``last_checkpoint`` is rewritten (after iter_4 is in
    place): the pointer still names iter_2, which was not deleted yet."""
    seen = {}
    work_dir, _, resumed = _kill_then_resume(
        tmp_path, tiny_seg_root, (4, 'pointer'),
        between=lambda work_dir: seen.update(_snapshot(work_dir)))
    assert seen['pointer'] == str(work_dir / 'iter_2.pth')
    assert {'iter_2.pth', 'iter_4.pth'} <= set(seen['files'])
    assert 'resumed epoch: 0, iter: 2' in resumed
    _assert_same_weights(uninterrupted,
                         _weights(work_dir / f'iter_{MAX_ITERS}.pth'))


@pytest.mark.slow
def test_resume_skips_empty_pointer_and_truncated_newest(
        uninterrupted, tiny_seg_root, tmp_path):
    """A pointer left empty and a truncated iter_4 (e.g. lost to a crash of
    a stack that writes in place): --resume falls back to iter_2 and says
    why."""

    def damage(work_dir):
        newest = work_dir / 'iter_4.pth'
        data = newest.read_bytes()
        newest.write_bytes(data[:len(data) // 2])
        (work_dir / 'last_checkpoint').write_text('')

    work_dir, _, resumed = _kill_then_resume(
        tmp_path, tiny_seg_root, (4, 'after_save'), max_keep=2,
        between=damage)
    assert 'last_checkpoint is empty' in resumed
    assert 'iter_4.pth cannot be read' in resumed
    assert f'Resuming from {work_dir / "iter_2.pth"}' in resumed
    _assert_same_weights(uninterrupted,
                         _weights(work_dir / f'iter_{MAX_ITERS}.pth'))


# --- the fallback on its own, with hand-made work dirs (fast) -------------


class ListLogger:
    """Collects what a hook logs (stands in for the runner's logger)."""

    def __init__(self):
        self.lines = []

    def warning(self, msg):
        self.lines.append(msg)

    info = warning


def _runner(work_dir):
    return SimpleNamespace(
        work_dir=str(work_dir), logger=ListLogger(), _resume=True,
        _load_from=None)


def _save(path, step):
    torch.save(dict(meta=dict(iter=step), state_dict=dict(w=torch.ones(1))),
               str(path))


def _resolved(work_dir):
    runner = _runner(work_dir)
    SafeCheckpointHook(interval=2, by_epoch=False).before_run(runner)
    return runner


def test_fresh_work_dir_resumes_nothing(tmp_path):
    assert _resolved(tmp_path)._load_from is None


def test_valid_pointer_is_followed(tmp_path):
    for step in (2, 4):
        _save(tmp_path / f'iter_{step}.pth', step)
    write_text_atomic(str(tmp_path / 'last_checkpoint'),
                      str(tmp_path / 'iter_2.pth'))
    runner = _resolved(tmp_path)
    assert runner._load_from == str(tmp_path / 'iter_2.pth')
    assert runner.logger.lines == []
    assert not (tmp_path / f'last_checkpoint{PARTIAL_SUFFIX}').exists()


@pytest.mark.parametrize('pointer', [None, '', 'iter_9.pth'])
def test_broken_pointer_falls_back_to_newest_loadable(tmp_path, pointer):
    for step in (2, 4, 10):
        _save(tmp_path / f'iter_{step}.pth', step)
    (tmp_path / 'iter_10.pth').write_bytes(b'')  # empty file
    data = (tmp_path / 'iter_4.pth').read_bytes()
    (tmp_path / 'iter_4.pth').write_bytes(data[:-100])  # truncated
    if pointer is not None:
        (tmp_path / 'last_checkpoint').write_text(
            str(tmp_path / pointer) if pointer else '')
    runner = _resolved(tmp_path)
    assert runner._load_from == str(tmp_path / 'iter_2.pth')
    log = runner.logger.lines[0]
    assert 'iter_10.pth is empty' in log
    assert 'iter_4.pth cannot be read' in log
    if pointer is None:
        assert 'last_checkpoint does not exist' in log
    elif pointer:
        assert 'iter_9.pth does not exist' in log
    else:
        assert 'last_checkpoint is empty' in log


def test_no_loadable_checkpoint_is_an_error(tmp_path):
    (tmp_path / 'iter_2.pth').write_bytes(b'not a checkpoint')
    (tmp_path / 'last_checkpoint').write_text('')
    with pytest.raises(RuntimeError, match=r'no checkpoint that loads.*'
                       r'iter_2\.pth cannot be read'):
        _resolved(tmp_path)


def test_refused_checkpoint_is_not_silently_skipped(tmp_path):
    _save(tmp_path / 'iter_2.pth', 2)
    torch.save(dict(meta=dict(when=logging.INFO), state_dict={},
                    handler=logging.Handler), str(tmp_path / 'iter_4.pth'))
    with pytest.raises(UntrustedCheckpointError, match='iter_4.pth'):
        _resolved(tmp_path)


def test_explicit_resume_path_is_left_alone(tmp_path):
    _save(tmp_path / 'iter_2.pth', 2)
    runner = _runner(tmp_path)
    runner._load_from = str(tmp_path / 'elsewhere.pth')
    SafeCheckpointHook(interval=2, by_epoch=False).before_run(runner)
    assert runner._load_from == str(tmp_path / 'elsewhere.pth')


@pytest.mark.parametrize('hook,expected', [
    (dict(type='CheckpointHook', interval=5), 'SafeCheckpointHook'),
    (None, None),  # checkpointing turned off stays off
    (dict(type='MyCheckpointHook'), 'MyCheckpointHook'),
    ('absent', 'SafeCheckpointHook'),  # mmengine's default, made safe
])
def test_tools_make_the_checkpoint_hook_crash_safe(hook, expected):
    from mmdas.utils import use_checkpoint_hooks
    cfg = Config(dict(default_hooks=dict(timer=dict(type='IterTimerHook'))))
    if hook != 'absent':
        cfg.default_hooks.checkpoint = hook
    use_checkpoint_hooks(cfg, test=True, allow_missing=['a.*'])
    checkpoint = cfg.default_hooks.checkpoint
    assert (checkpoint and checkpoint['type']) == expected
    if hook and hook != 'absent':
        assert checkpoint.get('interval') == hook.get('interval')
    assert cfg.custom_hooks == [
        dict(type='CheckpointCoverageHook', strict=True, allow_missing=['a.*'])
    ]


# --- the best checkpoint (save_best), with a tiny fake runner (fast) ------


class Interrupted(Exception):
    """Stands in for a kill at the injected moment."""


class FakeRunner:
    """What CheckpointHook's best-checkpoint logic uses of a Runner; its
    checkpoints hold the validation score and the best checkpoint that the
    message hub names (what a resume restores)."""

    def __init__(self, work_dir):
        self.work_dir = str(work_dir)
        self.logger = ListLogger()
        self.message_hub = MessageHub(f'best-{osp.basename(work_dir)}')
        self.epoch, self.iter, self.score = 0, 0, None

    def save_checkpoint(self, out_dir, filename, *args, meta=None, **kwargs):
        torch.save(
            dict(
                meta=meta,
                state_dict=dict(score=torch.tensor(self.score)),
                best_ckpt=self.message_hub.runtime_info.get('best_ckpt')),
            osp.join(out_dir, filename))


def _validate(hook, runner, step, score, key='mIoU'):
    """Train to ``step``, save its checkpoint, then score ``score``."""
    runner.iter, runner.score = step, score
    hook._save_checkpoint_with_step(runner, step, dict(epoch=0, iter=step))
    hook._save_best_checkpoint(runner, {key: score, 'aAcc': 1 - score})


def _best_hook(runner, save_best='mIoU'):
    hook = SafeCheckpointHook(
        interval=1, by_epoch=False, max_keep_ckpts=1, save_best=save_best,
        rule='greater')
    hook.before_train(runner)
    return hook


def _best_files(work_dir):
    return sorted(f for f in os.listdir(work_dir) if f.startswith('best_'))


def _score(path):
    return float(_weights(path)['score'])


def _recorded_best(work_dir):
    """The best checkpoint named by the checkpoint a resume would load."""
    resume_from = (work_dir / 'last_checkpoint').read_text()
    return load_checkpoint_file(resume_from, map_location='cpu')['best_ckpt']


@pytest.mark.parametrize('save_best', ['mIoU', ['mIoU', 'aAcc']])
def test_normal_run_keeps_exactly_one_best_checkpoint(tmp_path, save_best):
    """Scores 0.5, 0.3, 0.7: one best file per indicator, named after the
    iteration of its best score and holding it; no partial file left."""
    runner = FakeRunner(tmp_path)
    hook = _best_hook(runner, save_best)
    for step, score in ((2, 0.5), (4, 0.3), (6, 0.7)):
        _validate(hook, runner, step, score)
    if save_best == 'mIoU':
        assert _best_files(tmp_path) == ['best_mIoU_iter_6.pth']
        assert hook.best_ckpt_path == str(tmp_path / 'best_mIoU_iter_6.pth')
        assert runner.message_hub.get_info('best_score') == 0.7
    else:  # aAcc = 1 - mIoU was best at iteration 4
        assert _best_files(tmp_path) == [
            'best_aAcc_iter_4.pth', 'best_mIoU_iter_6.pth'
        ]
        assert _score(tmp_path / 'best_aAcc_iter_4.pth') == pytest.approx(0.3)
    assert _score(tmp_path / 'best_mIoU_iter_6.pth') == pytest.approx(0.7)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(PARTIAL_SUFFIX)]
    if save_best == 'mIoU':  # the checkpoint a resume loads names it
        assert _recorded_best(tmp_path) == str(
            tmp_path / 'best_mIoU_iter_6.pth')


def test_interrupt_after_new_best_keeps_both_loadable(tmp_path, monkeypatch):
    """Interrupted once the new best is in place, before the old one is
    deleted: both load, and the hook still knows the old one, whose file the
    last numbered checkpoint (the one a resume loads) names."""
    runner = FakeRunner(tmp_path)
    hook = _best_hook(runner)
    _validate(hook, runner, 2, 0.5)
    commit = safe_checkpoint_hook.commit_file

    def commit_then_die(partial, final):
        commit(partial, final)
        if osp.basename(final).startswith('best_'):
            raise Interrupted(final)

    monkeypatch.setattr(safe_checkpoint_hook, 'commit_file', commit_then_die)
    with pytest.raises(Interrupted, match='best_mIoU_iter_4.pth'):
        _validate(hook, runner, 4, 0.7)
    assert _best_files(tmp_path) == [
        'best_mIoU_iter_2.pth', 'best_mIoU_iter_4.pth'
    ]
    assert _score(tmp_path / 'best_mIoU_iter_2.pth') == pytest.approx(0.5)
    assert _score(tmp_path / 'best_mIoU_iter_4.pth') == pytest.approx(0.7)
    # the checkpoint a resume loads was saved before the new best: it names
    # the old best, which is still there
    assert _recorded_best(tmp_path) == str(tmp_path / 'best_mIoU_iter_2.pth')


def test_interrupt_while_writing_new_best_keeps_the_old(tmp_path):
    """Interrupted half-way through writing the new best: the old best is
    intact and no truncated best file exists (only the partial file, which
    the next run's before_train removes)."""
    runner = FakeRunner(tmp_path)
    hook = _best_hook(runner)
    _validate(hook, runner, 2, 0.5)
    save = runner.save_checkpoint

    def half_then_die(out_dir, filename, *args, **kwargs):
        save(out_dir, filename, *args, **kwargs)
        if filename.startswith('best_'):
            path = osp.join(out_dir, filename)
            with open(path, 'r+b') as f:
                f.truncate(osp.getsize(path) // 2)
            raise Interrupted(filename)

    runner.save_checkpoint = half_then_die
    with pytest.raises(Interrupted):
        _validate(hook, runner, 4, 0.7)
    assert _best_files(tmp_path) == [
        'best_mIoU_iter_2.pth', f'best_mIoU_iter_4.pth{PARTIAL_SUFFIX}'
    ]
    assert _score(tmp_path / 'best_mIoU_iter_2.pth') == pytest.approx(0.5)
    assert _recorded_best(tmp_path) == str(tmp_path / 'best_mIoU_iter_2.pth')
    _best_hook(FakeRunner(tmp_path))
    assert _best_files(tmp_path) == ['best_mIoU_iter_2.pth']
