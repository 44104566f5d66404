"""Test-only hook: one rank stops itself (SIGSTOP) before an iteration
(tests/test_dist.py), as a rank does when its machine or process freezes."""
import os
import signal

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class StopRankHook(Hook):
    """SIGSTOP rank ``rank`` before train iteration ``iter`` (0-based)."""

    def __init__(self, rank=1, iter=1):
        self.rank = rank
        self.iter = iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if get_rank() == self.rank and runner.iter == self.iter:
            os.kill(os.getpid(), signal.SIGSTOP)
