"""Reproducible data streams of the DAS search: an own random stream and an
endless pass over a dataloader.

:class:`DASSearchHook` draws the α part's batches from an :class:`RngStream`
so the weight part sees the random numbers of an ordinary run;
:class:`~mmdas.engine.SearchSelection` draws its evaluation and tuning data
from fresh ones, so a selection repeats exactly (``tools/select_policy.py``).
"""
import random

import numpy as np
import torch


def get_rng_state(cuda: bool = True) -> dict:
    """The states of Python's, numpy's and torch's (CPU and, with ``cuda``
    where CUDA is initialised, every GPU's) global generators."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned (a checkpoint's lists
    are taken for Python's tuples)."""
    random.setstate(_as_tuples(state['python']))
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _as_tuples(value):
    # random.setstate needs tuples; a checkpoint keeps them, but be lenient
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


class RngStream:
    """Own states of Python's, numpy's and torch's (CPU) global RNGs.

    Inside ``with stream:`` the global generators continue this stream;
    outside they continue where they were. Only the main process's
    generators are switched: a dataloader's worker processes seed their own
    (mmengine's ``worker_init_fn``), see :func:`non_persistent`.

    Args:
        seed (int): Seed of the stream.
    """

    def __init__(self, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.state = dict(
            python=random.Random(seed).getstate(),
            numpy=np.random.RandomState(seed % 2**32).get_state(),
            torch=gen.get_state())

    def __enter__(self):
        self.outside = get_rng_state(cuda=False)
        set_rng_state(self.state)

    def __exit__(self, *exc):
        self.state = get_rng_state(cuda=False)
        set_rng_state(self.outside)

    # checkpoints hold only tensors and plain Python values
    def state_dict(self) -> dict:
        version, internal, gauss = self.state['python']
        name, keys, pos, has_gauss, cached = self.state['numpy']
        return dict(
            python=[version, list(internal), gauss],
            numpy=[name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                   int(has_gauss), float(cached)],
            torch=self.state['torch'].clone())

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state['python']
        name, keys, pos, has_gauss, cached = state['numpy']
        self.state = dict(
            python=(version, tuple(internal), gauss),
            numpy=(name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss,
                   cached),
            torch=state['torch'].cpu())


class Cycle:
    """Endless iteration over a dataloader, one sampler epoch after another
    (without the pause of mmengine's ``_InfiniteDataloaderIterator``).

    Args:
        loader (DataLoader): The loader.
    """

    def __init__(self, loader):
        self.loader = loader
        self.epoch = 0
        self._iter = iter(loader)

    def __next__(self):
        try:
            return next(self._iter)
        except StopIteration:
            self.epoch += 1
            if hasattr(self.loader.sampler, 'set_epoch'):
                self.loader.sampler.set_epoch(self.epoch)
            self._iter = iter(self.loader)
            return next(self._iter)


def non_persistent(loader_cfg: dict) -> dict:
    """A copy of a dataloader config whose workers start afresh on every
    pass.

    mmengine seeds each worker (``worker_init_fn``: the loader's seed, the
    rank and the worker's id) when it starts; persistent workers start once
    and then carry their random state from one pass to the next, so two
    passes draw different augmentations. Workers that start afresh make
    every pass over a loader built with a fixed seed and a fixed sampler
    draw the same batches, bit for bit.
    """
    cfg = dict(loader_cfg)
    cfg['persistent_workers'] = False
    return cfg
