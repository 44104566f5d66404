"""Test-only fault injection: SIGKILL a training process at a chosen moment
of a checkpoint save.

Imported by a test config (``custom_imports``) with this folder on
PYTHONPATH; never by mmdas. :class:`KillDuringSave` arms at the save of
checkpoint ``step`` (``before_save_checkpoint``) and kills the process, with
the file half written, at

* ``'checkpoint'``: the next write of checkpoint bytes (mmengine's
  ``LocalBackend.put``, whatever file name the hook writes to);
* ``'pointer'``: the next write of ``last_checkpoint`` (any file whose name
  starts with it, opened for writing): the file is opened (truncated), then
  the process dies before a byte is written.

``'after_save'`` kills at the first training iteration after the save of
``step`` finished.
"""
import builtins
import os
import os.path as osp
import signal

from mmengine.fileio.backends.local_backend import LocalBackend
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


class _KilledWrite:
    """A file that dies on its first write."""

    def __init__(self, real):
        self.real = real

    def write(self, text):
        self.real.flush()
        os.fsync(self.real.fileno())
        _die()

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


@HOOKS.register_module()
class KillDuringSave(Hook):

    priority = 'LOWEST'

    def __init__(self, step: int, moment: str):
        assert moment in ('checkpoint', 'pointer', 'after_save'), moment
        self.step = step
        self.moment = moment
        self.saved = False

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['iter'] != self.step:
            return
        if self.moment == 'checkpoint':
            def put(backend, obj, filepath):
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                _die()

            LocalBackend.put = put
        elif self.moment == 'pointer':
            real_open = builtins.open

            def open_(file, mode='r', *args, **kwargs):
                handle = real_open(file, mode, *args, **kwargs)
                if ('w' in mode and isinstance(file, str)
                        and osp.basename(file).startswith('last_checkpoint')):
                    return _KilledWrite(handle)
                return handle

            builtins.open = open_
        else:
            self.saved = True

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.saved:
            _die()
