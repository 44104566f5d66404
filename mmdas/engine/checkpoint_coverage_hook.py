"""Refuse to evaluate a model that a checkpoint left at its initial weights.

mmengine loads checkpoints with ``strict=False`` and only logs the keys that
did not match, so ``tools/test.py`` with the wrong checkpoint evaluates a
randomly initialised model and exits 0; one whose weights are NaN (a run
that diverged) scores like a model that predicts one class. This hook
checks, right after a checkpoint is read, which of the model's weights it
provides and that they are finite.
"""
import fnmatch
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper

import torch

from mmdas.registry import HOOKS

#: How many key names an error message lists.
SHOWN_KEYS = 10


def _listing(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:SHOWN_KEYS])
    more = len(keys) - SHOWN_KEYS
    return shown + (f', ... ({more} more)' if more > 0 else '')


@HOOKS.register_module()
class CheckpointCoverageHook(Hook):
    """Check that a loaded checkpoint provides every weight of the model.

    Runs at ``after_load_checkpoint`` (``load_from`` and resume), after any
    hook of higher priority that rewrites the checkpoint. A model weight
    (parameter or persistent buffer) is *covered* if the checkpoint holds a
    tensor of its shape under its name, after mmengine's ``module.`` prefix
    stripping and the model's own key remapping (``_load_from_state_dict``
    and load-state-dict pre-hooks, which this check runs through
    ``Module.load_state_dict``).

    A weight that is NaN or infinite raises when ``strict``, naming the
    first such tensor (a warning otherwise).

    Args:
        strict (bool): Raise if a weight is not covered or not finite
            (``tools/test.py``: the checkpoint must cover the model). If
            False, log a warning with the uncovered weights (training's
            ``load_from``, where new modules legitimately start from their
            initialisation). Defaults to True.
        allow_missing (Sequence[str]): ``fnmatch`` patterns of weight names
            that may stay uncovered even when ``strict``, e.g. the temporal
            modules of a DAS model evaluated from a 2D checkpoint. Defaults
            to ().
        revise_keys (Sequence[tuple]): ``(pattern, replacement)`` applied to
            the checkpoint's keys, as mmengine's ``Runner.load_checkpoint``
            does. Defaults to ``[(r'^module\\.', '')]``.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 strict: bool = True,
                 allow_missing: Sequence[str] = (),
                 revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.',
                                                            ''), )):
        if isinstance(allow_missing, str):
            allow_missing = [allow_missing]
        self.strict = strict
        self.allow_missing = list(allow_missing)
        self.revise_keys = list(revise_keys)

    def _state_dict(self, checkpoint: dict) -> Dict:
        state_dict = checkpoint.get('state_dict', checkpoint)
        metadata = getattr(state_dict, '_metadata', OrderedDict())
        for pattern, replacement in self.revise_keys:
            state_dict = OrderedDict(
                (re.sub(pattern, replacement, k), v)
                for k, v in state_dict.items())
        state_dict._metadata = metadata
        return state_dict

    def uncovered(self, model, checkpoint: dict) -> Tuple[List, List, int]:
        """The model's weights that ``checkpoint`` does not provide.

        Args:
            model (nn.Module): The model (unwrapped).
            checkpoint (dict): The loaded checkpoint.

        Returns:
            tuple: ``(missing, mismatched, total)``: names the checkpoint
            lacks, names whose shape differs (``name: model shape vs
            checkpoint shape``), and how many weights the model has.
        """
        own = model.state_dict()
        state_dict = self._state_dict(checkpoint)
        mismatched = []
        for name, value in list(state_dict.items()):
            target = own.get(name)
            if (target is not None and hasattr(value, 'shape')
                    and tuple(value.shape) != tuple(target.shape)):
                mismatched.append(f'{name}: model {tuple(target.shape)} vs '
                                  f'checkpoint {tuple(value.shape)}')
                del state_dict[name]
        # loads the same values mmengine loads next; through the model's own
        # remapping, so a renamed key counts as provided
        missing = model.load_state_dict(state_dict, strict=False).missing_keys
        mismatched_names = {m.split(':')[0] for m in mismatched}
        missing = [k for k in missing if k not in mismatched_names]
        # BatchNorm fills a missing step counter in itself: not a weight
        total = sum(not k.endswith('num_batches_tracked') for k in own)
        return missing, mismatched, total

    def first_non_finite(self, checkpoint: dict) -> Optional[str]:
        """``name (shape): n of m values are not finite`` for the first
        floating-point tensor of the checkpoint holding NaN or inf, or
        None."""
        for name, value in self._state_dict(checkpoint).items():
            if not (isinstance(value, torch.Tensor)
                    and value.is_floating_point()):
                continue
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                return (f'{name} {tuple(value.shape)}: {bad} of '
                        f'{value.numel()} values are NaN or infinite')
        return None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        bad = self.first_non_finite(checkpoint)
        if bad is not None:
            source = getattr(runner, '_load_from', None) or ''
            message = (f'The checkpoint {source} holds non-finite weights, '
                       f'first {bad}: the run that wrote it diverged.')
            if self.strict:
                raise ValueError(
                    message + ' Evaluating it would score a model that '
                    'predicts nothing. Test an earlier checkpoint of that '
                    'run.')
            runner.logger.warning(message)
        # the module mmengine's load_state_dict loads into: it unwraps model
        # wrappers and test-time-augmentation models (``--tta``)
        model = runner.model
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        missing, mismatched, total = self.uncovered(model, checkpoint)
        allowed = [k for k in missing if any(
            fnmatch.fnmatchcase(k, p) for p in self.allow_missing)]
        missing = [k for k in missing if k not in allowed]
        if allowed:
            runner.logger.info(
                f'{len(allowed)} weights are not in the checkpoint and keep '
                f'their initial values (allowed by {self.allow_missing}): '
                f'{_listing(allowed)}')
        if not missing and not mismatched:
            return
        provided = sorted(self._state_dict(checkpoint))
        message = (
            f'The checkpoint covers {total - len(missing) - len(mismatched)}'
            f' of the model\'s {total} weights.')
        if missing:
            message += (f' Missing from it, expected by the model: '
                        f'{_listing(missing)}.')
        if mismatched:
            message += f' Different shapes: {_listing(mismatched)}.'
        message += (f' The checkpoint\'s own keys: {_listing(provided)}.')
        if not self.strict:
            runner.logger.warning(
                message + ' These weights keep their initial values.')
            return
        raise RuntimeError(
            message + ' Evaluating would use these weights at their random '
            'initialisation. Check that the checkpoint belongs to this '
            'config; if some weights are meant to keep their initial '
            "values (e.g. a DAS model's temporal modules when it is "
            'evaluated from a 2D checkpoint), name them with '
            "`tools/test.py ... --allow-missing 'PATTERN'` (fnmatch, "
            'repeatable).')

