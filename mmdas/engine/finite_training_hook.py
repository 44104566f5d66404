"""Stop a run whose loss or DAS α stops being a number.

A NaN loss does not stop mmengine's training loop: every later step stays
NaN, checkpoints are written, validation reports numbers and the run exits
0. ``tools/train.py`` installs :class:`FiniteTrainingHook` in every run (as
it installs :class:`~mmdas.engine.SafeCheckpointHook`).
"""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdas.registry import HOOKS


@HOOKS.register_module()
class FiniteTrainingHook(Hook):
    """Raise when a training step's loss or the model's α is not finite.

    After every training iteration, before the checkpoint hook saves (this
    hook's priority is higher), the logged losses and every parameter
    whose name ends with ``alphas`` (:class:`~mmdas.models.DASCell`'s
    architecture weights) are checked. The error names the iteration, the
    bad value and the last checkpoint saved before it, which the bad step
    did not touch.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self):
        self._alphas = None

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        self._alphas = [(name, p) for name, p in model.named_parameters()
                        if name.split('.')[-1] == 'alphas']

    def _first_bad(self, outputs) -> Optional[str]:
        for key, value in (outputs or {}).items():
            if 'loss' not in key:  # e.g. decode.loss_ce, loss; not acc
                continue
            number = float(value.detach()) if isinstance(
                value, torch.Tensor) and value.numel() == 1 else value
            if isinstance(number, float) and not math.isfinite(number):
                return f'{key} is {number}'
        for name, alphas in self._alphas or ():
            if not bool(torch.isfinite(alphas.detach()).all()):
                return f'the DAS parameter {name} holds {alphas.tolist()}'
        return None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        problem = self._first_bad(outputs)
        if problem is None:
            return
        last = runner.message_hub.get_info('last_ckpt')
        resume = (f'The last checkpoint, saved before it, is {last} '
                  f'(`--resume {last}` with a fix continues from there)'
                  if last else 'No checkpoint was saved before it')
        raise RuntimeError(
            f'Training stopped at iteration {runner.iter + 1}: {problem}. '
            f'{resume}. Every later step would stay non-finite. Lower the '
            'learning rate, check the DAS policy magnitudes and the data.')
