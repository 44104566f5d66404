"""Checkpoints that survive a kill at any moment, and a resume that finds
the newest one that loads.

mmengine's :class:`~mmengine.hooks.CheckpointHook` deletes the oldest kept
checkpoint *before* writing the new one, writes the new one in place and
rewrites ``last_checkpoint`` in place, so a SIGKILL (OOM killer, preempted
job) at the wrong moment leaves no usable checkpoint, a truncated one, or an
empty pointer, and ``--resume`` fails.
"""
import json
import os
import os.path as osp
import re
from contextlib import contextmanager
from typing import List, Optional, Tuple

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from mmdas.checkpoint_loading import (UntrustedCheckpointError,
                                      load_checkpoint_file)
from mmdas.registry import HOOKS

#: Suffix of a checkpoint being written; renamed away once complete.
PARTIAL_SUFFIX = '.partial'
POINTER = 'last_checkpoint'


def _fsync_dir(path: str) -> None:
    """Make a rename inside ``path`` durable (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_file(partial: str, final: str) -> None:
    """Flush ``partial`` to disk and atomically rename it to ``final``.

    A reader (or a resume after a crash) then sees either the old ``final``
    or the complete new one, never a part of it.
    """
    if osp.isfile(partial):
        with open(partial, 'rb') as f:
            os.fsync(f.fileno())
    os.replace(partial, final)
    _fsync_dir(osp.dirname(osp.abspath(final)))


# What torch's zip writer raises when a write fails (no errno, no path)
_WRITE_FAILED = re.compile(r'inline_container|PytorchStreamWriter|'
                           r'unexpected pos|file write failed')


@contextmanager
def partial_removed_on_failure(partial: str, final: str):
    """Delete ``partial`` if the block fails, and raise an ``OSError``
    naming ``final``.

    A full disk (``ENOSPC``) or a file size limit fails a write with an
    error that names no file (torch's ``unexpected pos``, ``[Errno 28]``),
    and would leave the partial file filling the disk.
    """
    try:
        yield
    except (OSError, RuntimeError) as err:
        if not isinstance(err, OSError) and not _WRITE_FAILED.search(
                str(err)):
            raise  # not a failed write
        removed = ''
        if osp.exists(partial):
            try:
                os.remove(partial)
                removed = f'; removed the partial file {partial}'
            except OSError:
                removed = f'; could not remove the partial file {partial}'
        code = getattr(err, 'errno', None)
        message = (f'Writing {final} failed ({type(err).__name__}: '
                   f'{str(err).strip()[:300]}){removed}. Is the disk full? '
                   f'{final} and the files written before it are unchanged.')
        raise OSError(code, message) if code else OSError(message) from err


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    partial = path + PARTIAL_SUFFIX
    with partial_removed_on_failure(partial, path):
        with open(partial, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        commit_file(partial, path)


def write_json_atomic(path: str, data, **kwargs) -> None:
    """Write ``data`` as JSON (``json.dumps`` arguments in ``kwargs``) to
    ``path`` through a temporary file and a rename, ending in a newline."""
    write_text_atomic(path, json.dumps(data, **kwargs) + '\n')


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from, or None if it can.

    The file is loaded (with mmdas's safe loader): a truncated or otherwise
    damaged file fails here rather than in the middle of ``Runner.resume``.

    Raises:
        UntrustedCheckpointError: The file is intact but refused by the
            checkpoint allow-list; that is not silently skipped.
    """
    if not osp.isfile(path):
        return 'does not exist'
    if osp.getsize(path) == 0:
        return 'is empty (0 bytes)'
    try:
        checkpoint = load_checkpoint_file(path, map_location='cpu')
    except UntrustedCheckpointError:
        raise
    except Exception as err:  # torch raises RuntimeError, EOFError, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ''
        return f'cannot be read ({type(err).__name__}: {reason})'
    if not isinstance(checkpoint, dict) or not {'meta', 'state_dict'} <= set(
            checkpoint):
        return 'is not a training checkpoint (no `meta` and `state_dict`)'
    return None


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """:class:`~mmengine.hooks.CheckpointHook` that a kill cannot corrupt.

    Same arguments and the same files as its parent. What differs, for
    checkpoints in a local directory:

    * a checkpoint is written as ``<name>.partial``, flushed to disk and
      renamed into place; ``last_checkpoint`` likewise;
    * the checkpoint that ``max_keep_ckpts`` retires is deleted only after
      the new checkpoint and ``last_checkpoint`` are in place;
    * the best checkpoint (``save_best``) is written the same way, and the
      previous best is deleted only after the new best, and the checkpoint
      that records it, are in place;
    * ``--resume`` (auto-resume: ``resume=True``, no ``load_from``) resumes
      from ``last_checkpoint`` if that checkpoint loads, and otherwise from
      the newest checkpoint that loads, logging every file it skipped and
      why (missing or empty pointer, missing, empty, truncated file).

    Checkpoints in other storage (``backend_args`` for a remote backend) are
    saved as by the parent, whose backends write each object atomically.
    """

    def _is_local(self) -> bool:
        backend = getattr(self.file_backend, 'client', self.file_backend)
        return isinstance(backend, LocalBackend)

    def _checkpoint_dir(self, runner) -> str:
        """Where :meth:`before_train` will put checkpoints."""
        if self.out_dir is None or self.out_dir == runner.work_dir:
            return runner.work_dir
        if getattr(self, 'file_backend', None) is not None:
            return self.out_dir  # already joined by before_train
        return osp.join(self.out_dir,
                        osp.basename(runner.work_dir.rstrip(osp.sep)))

    def _numbered_checkpoints(self, directory: str) -> List[Tuple[int, str]]:
        """``(step, path)`` of the files named like ``filename_tmpl``, newest
        first."""
        pattern = re.compile(
            re.escape(self.filename_tmpl).replace(r'\{\}', r'(\d+)') + '$')
        found = []
        if osp.isdir(directory):
            for name in os.listdir(directory):
                match = pattern.match(name)
                if match:
                    found.append((int(match.group(1)),
                                  osp.join(directory, name)))
        return sorted(found, reverse=True)

    def find_resume_checkpoint(self, runner) -> Optional[str]:
        """The checkpoint an auto-resume should load.

        ``last_checkpoint``'s target if it loads, else the newest numbered
        checkpoint that loads. None if there is neither a pointer nor a
        checkpoint (a fresh run, as in mmengine). A pointer to remote
        storage (``s3://...``) is followed as mmengine does.

        Raises:
            RuntimeError: There are checkpoints or a pointer, but none loads.
        """
        pointer = osp.join(runner.work_dir, POINTER)
        directory = self._checkpoint_dir(runner)
        numbered = self._numbered_checkpoints(directory)
        skipped, candidates = [], []
        if osp.isfile(pointer):
            with open(pointer) as f:
                target = f.read().strip()
            if '://' in target:  # remote storage: mmengine's behaviour
                return target
            if target:
                candidates.append(target)
            else:
                skipped.append(f'{pointer} is empty')
        elif numbered:
            skipped.append(f'{pointer} does not exist')
        else:
            return None
        candidates += [p for _, p in numbered if p not in candidates]
        for path in candidates:
            problem = checkpoint_problem(path)
            if problem is None:
                if skipped:
                    runner.logger.warning(
                        f'Resuming from {path}, the newest checkpoint that '
                        'loads. Skipped: ' + '; '.join(skipped) + '.')
                return path
            skipped.append(f'{path} {problem}')
        raise RuntimeError(
            f'--resume found no checkpoint that loads in {directory}: ' +
            '; '.join(skipped) + '. Start without --resume to train from '
            'the beginning, or pass --resume PATH for a checkpoint elsewhere.')

    def before_run(self, runner) -> None:
        """Pick the checkpoint an auto-resume will load."""
        super().before_run(runner)
        # mmengine's auto-resume reads last_checkpoint in load_or_resume,
        # right after before_run; an explicit load_from is left alone
        if runner._resume and runner._load_from is None:
            path = self.find_resume_checkpoint(runner)
            if path is not None:
                runner._load_from = path

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._is_local() and is_main_process():
            for name in os.listdir(self.out_dir) if osp.isdir(
                    self.out_dir) else []:
                if name.endswith(PARTIAL_SUFFIX):
                    os.remove(osp.join(self.out_dir, name))
                    runner.logger.info(
                        f'Removed {name}, left by an interrupted save.')

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        # the parent's bookkeeping of kept checkpoints, but the retired one
        # is deleted at the end
        retired = None
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                retired = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        with partial_removed_on_failure(self.last_ckpt + PARTIAL_SUFFIX,
                                        self.last_ckpt):
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename + PARTIAL_SUFFIX,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
            if is_main_process():
                commit_file(self.last_ckpt + PARTIAL_SUFFIX, self.last_ckpt)
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, POINTER), self.last_ckpt)
        if retired is not None and retired != step:
            self._remove(
                self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(retired)))

    def _remove(self, path: str) -> None:
        """Delete a checkpoint file, or a directory (deepspeed's)."""
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            self.file_backend.rmtree(path)

    @contextmanager
    def _atomic_saves(self, runner):
        """Make ``runner.save_checkpoint`` write ``<name>.partial`` and rename
        it into place, for the duration of the block.

        The parent's ``_save_best_checkpoint`` calls ``runner.save_checkpoint``
        with the final name; redirecting that call is what spares copying it.
        """
        save = runner.save_checkpoint
        shadowed = vars(runner).get('save_checkpoint')  # set on the object

        def save_atomic(out_dir, filename, *args, **kwargs):
            # _save_checkpoint_with_step (called by the parent last) writes
            # and commits its own partial file
            if filename.endswith(PARTIAL_SUFFIX):
                return save(out_dir, filename, *args, **kwargs)
            path = self.file_backend.join_path(out_dir, filename)
            with partial_removed_on_failure(path + PARTIAL_SUFFIX, path):
                save(out_dir, filename + PARTIAL_SUFFIX, *args, **kwargs)
                if is_main_process():
                    commit_file(path + PARTIAL_SUFFIX, path)

        runner.save_checkpoint = save_atomic
        try:
            yield
        finally:
            if shadowed is None:
                del runner.save_checkpoint  # the Runner method again
            else:
                runner.save_checkpoint = shadowed

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self.save_best or not self._is_local():
            return super()._save_best_checkpoint(runner, metrics)
        # The parent decides which indicators improved and names the new
        # best files, but deletes each previous best before it writes the
        # new one. Rather than copy its logic, hide the previous bests from
        # it (it deletes nothing when it knows no best) and delete them here
        # once it returned: after the new best and the checkpoint that
        # records it (its `_save_checkpoint_with_step`) are in place. A kill
        # in between leaves both bests, each loadable; the one the resumed
        # run does not know of stays on disk.
        if len(self.key_indicators) > 1:
            best_paths, keys = self.best_ckpt_path_dict, self.key_indicators
        else:
            best_paths, keys = vars(self), ['best_ckpt_path']  # attribute
        previous = {key: best_paths.get(key) for key in keys}
        best_paths.update(dict.fromkeys(keys))
        try:
            with self._atomic_saves(runner):
                super()._save_best_checkpoint(runner, metrics)
        finally:
            for key, old in previous.items():
                if best_paths[key] is None:  # no better score: keep the old
                    best_paths[key] = old
        for key, old in previous.items():
            if old and best_paths[key] != old and is_main_process():
                self._remove(old)
                runner.logger.info(
                    f'The previous best checkpoint {old} is removed.')
