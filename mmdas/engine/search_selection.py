"""The selection that ends a DAS search: evaluate, tune, decide, write.

:class:`DASSearchHook` trains α and the weights; at the end of the search (or
from a checkpoint, ``tools/select_policy.py``) :class:`SearchSelection`
turns the trained supernet into a policy:

- **evaluate**: the task metric (:func:`~mmdas.engine.task_metric`) on a
  fixed sample of the α part: the same images, crops and photometric draws
  for every masked op, whatever the loader's workers (a loader of its own
  whose workers start afresh, seeded, on every pass; see
  :func:`~mmdas.engine.data_streams.non_persistent`);
- **tune**: between two edge decisions of a multi-node cell, a few weight
  steps at each param group's *initial* learning rate × ``tune_lr_mult``
  (not the decayed one the search ended with), α left as it is;
- **decide**: :class:`~mmdas.engine.PerturbationSelection`, with a line per
  measured masked op and what is left;
- **write**: the policy files and the selection record
  (:meth:`SearchSelection.write`).
"""
import os.path as osp
import time
from typing import Callable, Dict, List, Optional

import numpy as np
from mmengine.dist import is_main_process
from mmengine.optim import OptimWrapperDict

from mmdas.policy import DASPolicy
from .data_streams import Cycle, RngStream, non_persistent
from .perturbation_selection import PerturbationSelection, task_metric
from .safe_checkpoint_hook import write_json_atomic

POLICY_FILE = 'policy.json'
ARGMAX_POLICY_FILE = 'policy_argmax.json'
SELECTION_FILE = 'das_selection.json'

#: The share of the search's time that ``eval_batches='auto'`` gives the
#: selection.
SELECTION_BUDGET = 0.1
#: The cost of one search iteration (an α step and a weight step, each a
#: forward and backward pass on a batch it loads) in evaluation batches (a
#: forward pass without gradients on a batch of the same size, loaded too).
#: Counting passes gives 6 (a backward pass costs about two forwards);
#: measured on the demo search config it was 4.4 to 5.4 (CPU, shared,
#: bench/bench_selection_cost.py, docs/das_search.md); 4 leaves a margin.
ITER_COST_IN_EVAL_BATCHES = 4.0

# seed offsets of the selection's own streams (the search uses 0 to 3)
_EVAL_SEED, _TUNE_SEED = 4, 5


def auto_eval_batches(search_iters: int, num_evaluations: int,
                      tune_steps: int, available: int) -> int:
    """The evaluation size that keeps the selection within
    :data:`SELECTION_BUDGET` of the search's time.

    Args:
        search_iters (int): Iterations of the search.
        num_evaluations (int): Metric evaluations of the selection
            (``edges × (ops + 1)``).
        tune_steps (int): Weight steps of the tuning between decisions
            (each about half a search iteration).
        available (int): Batches of the α part (the most there are).

    Returns:
        int: Batches per evaluation, between 1 and ``available``.
    """
    budget = SELECTION_BUDGET * search_iters * ITER_COST_IN_EVAL_BATCHES
    budget -= tune_steps * ITER_COST_IN_EVAL_BATCHES / 2
    return int(max(1, min(available, budget // max(num_evaluations, 1))))


def _param_groups(optim_wrapper) -> List[dict]:
    wrappers = (optim_wrapper.values() if isinstance(
        optim_wrapper, OptimWrapperDict) else [optim_wrapper])
    return [g for o in wrappers for g in o.optimizer.param_groups]


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f'{minutes} min {seconds:02d} s' if minutes else f'{seconds} s'


class SearchSelection:
    """Select the op of every edge of a searched cell and write the policy.

    Args:
        runner (Runner): The search's runner: its optimiser wrapper tunes,
            its logger reports, its work dir receives the files.
        cell (DASCell): The searched cell.
        model (nn.Module): The unwrapped model that holds the cell.
        settings (dict): The checked search settings
            (:func:`~mmdas.engine.das_search_hook.check_search_settings`).
        seed (int): The search's seed.
        split (dict): ``weights`` and ``arch``, the two parts' indices.
        build_loader (Callable): ``build_loader(indices, seed, cfg)``: a
            dataloader of those indices of the training set, built from the
            training loader config ``cfg`` with that seed.
        loader_cfg (dict): The training loader's config.
        arch_params (list[Tensor]): The search's α parameters; the
            gradients tuning steps leave on them are dropped.
    """

    def __init__(self,
                 runner,
                 cell,
                 model,
                 settings: dict,
                 seed: int,
                 split: dict,
                 build_loader: Callable,
                 loader_cfg: dict,
                 arch_params: list):
        self.runner = runner
        self.cell = cell
        self.model = model
        self.settings = settings
        self.sel = settings['selection']
        self.seed = seed
        self.split = split
        self.arch_params = arch_params
        # a fixed, seeded sample of the α part (shuffled: a data set stored
        # class by class must not give its first classes only)
        self.eval_loader = build_loader(
            split['arch'], seed + _EVAL_SEED,
            dict(non_persistent(loader_cfg),
                 sampler=dict(type='DefaultSampler', shuffle=True,
                              seed=seed + _EVAL_SEED)))
        self.tune_loader = build_loader(split['weights'], seed + _TUNE_SEED,
                                        non_persistent(loader_cfg))
        self.num_batches = self._num_batches()

    # ---- evaluate -----------------------------------------------------------
    def _num_batches(self) -> int:
        """Batches per evaluation (``eval_batches`` resolved)."""
        limit, available = self.sel['eval_batches'], len(self.eval_loader)
        if limit is None:
            return available
        if limit == 'auto':
            cell = self.cell
            tune_steps = (self.sel['tune_iters'] *
                          (cell.num_edges - 1) if cell.num_edges > 1 else 0)
            return auto_eval_batches(
                self.runner.train_loop.max_iters,
                cell.num_edges * (len(cell.ops) + 1), tune_steps, available)
        return min(limit, available)

    def _batches(self):
        for i, batch in enumerate(self.eval_loader):
            if i >= self.num_batches:
                return
            yield batch

    def evaluate(self) -> float:
        """The task metric of the model with the cell's current weights, on
        the same batches, bit for bit, at every call: a fresh random stream
        for the main process (no workers), workers that start afresh with
        the loader's seed (workers)."""
        with RngStream(self.seed + _EVAL_SEED):
            return task_metric(self.model, self._batches(),
                               self.sel['criterion'])

    # ---- tune ---------------------------------------------------------------
    def tune(self) -> None:
        """``tune_iters`` weight steps at each param group's initial learning
        rate × ``tune_lr_mult``; the learning rates are restored after."""
        runner, wrapper = self.runner, self.runner.optim_wrapper
        if not hasattr(self, '_tune_iter'):
            self._tune_iter = Cycle(self.tune_loader)
            self._tune_rng = RngStream(self.seed + _TUNE_SEED)
        groups = _param_groups(wrapper)
        saved = [g['lr'] for g in groups]
        for g in groups:
            # param schedulers keep the value they started from in
            # 'initial_lr'; without one the lr was never changed
            g['lr'] = g.get('initial_lr', g['lr']) * self.sel['tune_lr_mult']
        runner.model.train()
        try:
            with self._tune_rng:
                for _ in range(self.sel['tune_iters']):
                    runner.model.train_step(
                        next(self._tune_iter), optim_wrapper=wrapper)
                    for param in self.arch_params:
                        param.grad = None  # α is not trained while tuning
        finally:
            for g, lr in zip(groups, saved):
                g['lr'] = lr

    # ---- decide -------------------------------------------------------------
    def run(self) -> dict:
        """Select, write the files (rank 0) and return the record."""
        sel, cell, logger = self.sel, self.cell, self.runner.logger
        num_evaluations = cell.num_edges * (len(cell.ops) + 1)
        how = (f"eval_batches='auto': about {SELECTION_BUDGET:.0%} of the "
               f'{self.runner.train_loop.max_iters}-iteration search'
               if sel['eval_batches'] == 'auto' else
               f"eval_batches={sel['eval_batches']}")
        logger.info(
            'DAS search: perturbation-based selection on the alpha part '
            f"({sel['criterion']}): {num_evaluations} evaluations of "
            f'{self.num_batches} of its {len(self.eval_loader)} batches '
            f'({how})')
        tune = (self.tune
                if sel['tune_iters'] and cell.num_edges > 1 else None)
        start = time.perf_counter()
        result = PerturbationSelection(
            cell,
            self.evaluate,
            tune=tune,
            edge_order=sel['edge_decision'],
            seed=self.seed,
            log=logger.info).run()
        seconds = time.perf_counter() - start
        weights = cell.edge_weights().detach().float().cpu()
        record = dict(
            criterion=sel['criterion'],
            ops=list(cell.ops),
            num_nodes=cell.num_nodes,
            perturbation=result,
            argmax=dict(genotype=cell.genotype(), weights=weights.tolist()),
            alphas=cell.alphas.detach().cpu().tolist(),
            policy_file=POLICY_FILE,
            argmax_policy_file=ARGMAX_POLICY_FILE,
            split=dict(
                seed=self.seed,
                train_portion=self.settings['train_portion'],
                num_weight_samples=len(self.split['weights']),
                num_arch_samples=len(self.split['arch'])),
            eval_batches=self.num_batches,
            seconds=seconds,
            iter=self.runner.iter)
        logger.info(f"DAS search: perturbation selects {result['genotype']}, "
                    f'argmax(alpha) selects {cell.genotype()} '
                    f'(selection took {_duration(seconds)})')
        if is_main_process():
            self.write(self.runner.work_dir, record)
        return record

    # ---- write --------------------------------------------------------------
    def write(self, work_dir: str, record: dict) -> None:
        """Write ``policy.json`` (perturbation), ``policy_argmax.json`` and
        ``das_selection.json`` (the record) to ``work_dir``."""
        cell, logger = self.cell, self.runner.logger
        path = osp.join(work_dir, POLICY_FILE)
        files = {
            path: policy_data(cell, record['perturbation']['genotype']),
            osp.join(work_dir, ARGMAX_POLICY_FILE):
            policy_data(cell, record['argmax']['genotype']),
        }
        # temp file and rename, as the checkpoints: a kill never leaves a
        # truncated policy behind
        for name, data in files.items():
            write_json_atomic(name, data, indent=2)
        write_json_atomic(osp.join(work_dir, SELECTION_FILE), record,
                          indent=2)
        # the shipped configs (mmseg and mmpretrain) set the DAS
        # preprocessor in the model; a config may set it at top level
        key = ('model.data_preprocessor' if 'data_preprocessor' in
               self.runner.cfg.get('model', {}) else 'data_preprocessor')
        logger.info(f'DAS search: wrote {path}; train the training '
                    f'twin with --cfg-options {key}.policy={path}')


def policy_data(cell, genotype: List[str]) -> Dict:
    """The policy file's content for ``genotype`` of ``cell``: a
    :class:`DASPolicy` for a single edge, a frozen cell file otherwise."""
    # the shortest decimal of each float32 magnitude (0.05, not
    # 0.05000000074505806): the same float32 when it is read back
    mags = {
        op: float(str(np.float32(cell._magnitude(o).item())))
        for o, op in enumerate(cell.ops)
    }
    if cell.num_edges == 1:
        op = genotype[0]
        transforms = [dict(op=op)] if op == 'identity' else [
            dict(op=op, magnitude=mags[op])
        ]
        return DASPolicy(
            transforms, num_frames=cell.num_frames,
            profile=cell.profile).to_dict()
    return dict(
        type='FrozenDASCell',
        ops=list(cell.ops),
        magnitudes={op: v
                    for op, v in mags.items() if op != 'identity'},
        num_frames=cell.num_frames,
        profile=cell.profile,
        num_nodes=cell.num_nodes,
        genotype=list(genotype),
        # each node keeps its strongest input (darts-pt): the frames are one
        # path of ops, so the map the inverse warp uses is exact
        node_inputs=cell.strongest_inputs(genotype))
