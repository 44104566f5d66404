"""Checkpoints that hold the random state, so that a resumed run draws what
the uninterrupted one drew.

mmengine's resume re-seeds every generator with the run's seed and replays
the data loader from the start (``Advance dataloader N steps``). The data
order and the augmentations then repeat, but torch's generator (dropout,
``torch.rand`` in the model) restarts where the seed puts it, not where the
interrupted run was: α and weights drift apart from the first resumed step.
"""
from typing import Optional

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop

from mmdas.registry import HOOKS
from .data_streams import get_rng_state, set_rng_state

#: Key of the random state in a checkpoint.
RNG_KEY = 'rng_state'


class _RestoreBeforeBatch:
    """The loop's data iterator, that restores the random state right before
    batch ``skip + 1``: after mmengine's resume replay of ``skip`` batches,
    where the interrupted run drew its next batch."""

    def __init__(self, loop, skip: int, restore):
        self._loop, self._iterator = loop, loop.dataloader_iterator
        self._left, self._restore = skip, restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._left == 0:
            self._restore()
            self._loop.dataloader_iterator = self._iterator  # done
        self._left -= 1
        return next(self._iterator)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the random state in every checkpoint and restore it on resume.

    * ``before_save_checkpoint``: ``checkpoint['rng_state']`` holds the
      Python, numpy, torch CPU and CUDA generator states, and the loader's
      sampler position (batches drawn, sampler seed);
    * on resume, the states are set where the interrupted run stood: for an
      iteration-based loop, after mmengine's replay of the batches already
      trained (which reproduces the sampler position; the hook checks it
      against the saved one), right before the next batch; for an
      epoch-based loop, before the first resumed epoch's data;
    * validation during training leaves the training's random stream as it
      found it (its state is saved before and restored after), so that a
      run resumed after a validation draws the same numbers.

    ``tools/train.py`` installs it in every run, with
    :class:`~mmdas.engine.SafeCheckpointHook`. With several ranks, each
    rank's state equals rank 0's only without ``randomness.diff_rank_seed``:
    with it, the states are not restored (a warning says so).
    """

    priority = 'LOWEST'

    def __init__(self):
        self._pending: Optional[dict] = None
        self._before_val: Optional[dict] = None

    # ---- saving -------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        loop = runner.train_loop
        sampler = getattr(getattr(loop, 'dataloader', None), 'sampler', None)
        # an iteration-based resume replays meta['iter'] batches
        checkpoint[RNG_KEY] = dict(
            get_rng_state(),
            batches=checkpoint.get('meta', {}).get('iter'),
            sampler_seed=getattr(sampler, 'seed', None))

    # ---- restoring ----------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not runner._resume:  # load_from: weights only
            return
        state = checkpoint.get(RNG_KEY)
        if state is None:
            runner.logger.warning(
                'The checkpoint holds no random state (written before '
                'mmdas saved it): the resumed run will not draw what the '
                'uninterrupted one drew (dropout, random augmentations).')
            return
        randomness = runner.cfg.get('randomness') or {}
        if get_world_size() > 1 and randomness.get('diff_rank_seed'):
            runner.logger.warning(
                'randomness.diff_rank_seed=True: each rank had its own '
                'random state and the checkpoint holds rank 0\'s, so it is '
                'not restored.')
            return
        self._pending = state

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        loop = runner.train_loop
        sampler = getattr(getattr(loop, 'dataloader', None), 'sampler', None)
        seed = getattr(sampler, 'seed', None)
        if state.get('sampler_seed') is not None and seed != state[
                'sampler_seed']:
            runner.logger.warning(
                f'The sampler seed is {seed}, the checkpoint\'s '
                f'{state["sampler_seed"]}: the resumed data order differs.')
        if isinstance(loop, IterBasedTrainLoop):
            if loop.iter != state['batches']:
                raise RuntimeError(
                    f'Resume: the loop replays {loop.iter} batches but the '
                    f'checkpoint was saved after {state["batches"]}; its '
                    'random state would be restored at the wrong batch.')
            loop.dataloader_iterator = _RestoreBeforeBatch(
                loop, loop.iter, lambda: set_rng_state(state))
        else:
            set_rng_state(state)

    # ---- validation leaves training's random stream alone ---------------
    def before_val(self, runner) -> None:
        self._before_val = get_rng_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_rng_state(self._before_val)
            self._before_val = None
