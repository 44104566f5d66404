"""The DAS search as a hook: first-order bilevel DARTS over a DASCell's α.

A search config (``configs/das_search_*.py``) is an ordinary training config
whose DAS preprocessor holds a :class:`~mmdas.models.DASCell` and whose
``custom_hooks`` hold :class:`DASSearchHook`. Trained through
``tools/train.py`` (or ``tools/dist_train.sh``), the hook turns the run into
the search:

- the training set is split once, by seed, into a weight part
  (``train_portion`` of it) and an α part; the runner's own loop trains the
  weights on the weight part with the config's optimiser, from which α is
  removed;
- before each weight step one α step runs on a batch of the α part: the
  loss of the model in train mode, differentiated with respect to α only,
  averaged over ranks, applied by the α optimiser (Adam by default);
- softmax(α) is logged, sent to the visualisation backends and recorded;
- at the end, the α history goes to the work dir and
  :class:`~mmdas.engine.SearchSelection` (``search_selection.py``) selects
  the op of each edge by perturbation and by argmax(α) and writes the
  policy files and the selection record.

The hook owns the bilevel loop and its state (the split, the α optimiser,
the α part's data stream, the history), which checkpoints carry.

The hook is configured by the config's ``das_search`` section (the single
place; see :data:`SEARCH_DEFAULTS`) or, without one, by its own keyword
arguments.
"""
import copy
import os.path as osp
from functools import partial
from typing import List, Optional

import torch
from mmengine.dist import all_reduce, get_dist_info, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.registry import OPTIMIZERS

from mmdas.datasets.dataset_part import DatasetPart, split_indices
from mmdas.models.das_cell import DASCell
from mmdas.models.frozen_das_cell import FrozenDASCell
from mmdas.registry import HOOKS
from .data_streams import Cycle, RngStream
from .perturbation_selection import CRITERIA, EDGE_ORDERS, is_segmentor
from .safe_checkpoint_hook import write_json_atomic
from .search_selection import SearchSelection

#: Every ``das_search`` key and its default.
SEARCH_DEFAULTS = dict(
    # fraction of the training set that trains the weights; the rest trains α
    train_portion=0.5,
    # seed of the split and of the α part's data stream (None: the runner's)
    seed=None,
    # the α optimiser (first-order DARTS)
    arch_optimizer=dict(
        type='Adam', lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3),
    # log softmax(α) and record the α history every this many iterations
    log_interval=50,
    # a mixture of ops has no single inverse map: refuse inverse-warp fusion
    # unless the user opts in
    allow_inverse_warp=False,
    selection=dict(
        enable=True,  # select and write the policy at the end of the search
        criterion='accuracy',  # 'accuracy' (pixel acc. for seg) or 'mIoU'
        edge_decision='random',  # order of the edges: 'random'|'sequential'
        tune_iters=50,  # weight steps between two edge decisions
        # factor on each param group's initial learning rate while tuning
        tune_lr_mult=0.1,
        # α-part batches per evaluation: an int, None (all) or 'auto' (the
        # most that keep the selection within 10% of the search's time)
        eval_batches='auto',
    ))

HISTORY_FILE = 'das_alpha_history.json'
HISTORY_PLOT = 'das_alpha_history.png'


def check_search_settings(settings: dict, field: str) -> dict:
    """``settings`` merged over :data:`SEARCH_DEFAULTS`, validated."""
    settings = dict(settings)
    merged = copy.deepcopy(SEARCH_DEFAULTS)
    unknown = sorted(set(settings) - set(merged))
    if unknown:
        raise ValueError(f'{field}: unknown keys {unknown}; valid keys are '
                         f'{sorted(merged)}.')
    selection = dict(settings.pop('selection', None) or {})
    unknown = sorted(set(selection) - set(merged['selection']))
    if unknown:
        raise ValueError(f'{field}.selection: unknown keys {unknown}; valid '
                         f'keys are {sorted(merged["selection"])}.')
    merged.update(settings)
    merged['selection'].update(selection)

    portion = merged['train_portion']
    if isinstance(portion, bool) or not isinstance(
            portion, (int, float)) or not 0 < portion < 1:
        raise ValueError(
            f'{field}.train_portion: {portion!r} is invalid; it is the '
            'fraction of the training set that trains the weights (the rest '
            'trains α) and must lie strictly between 0 and 1, e.g. 0.5.')
    seed = merged['seed']
    if seed is not None and (isinstance(seed, bool)
                             or not isinstance(seed, int)):
        raise ValueError(f'{field}.seed: {seed!r} must be an int or None.')
    optim = merged['arch_optimizer']
    if not isinstance(optim, dict) or 'type' not in optim:
        raise ValueError(f'{field}.arch_optimizer: {optim!r} must be an '
                         "optimizer config such as dict(type='Adam', "
                         'lr=3e-4).')
    interval = merged['log_interval']
    if isinstance(interval, bool) or not isinstance(interval,
                                                    int) or interval < 1:
        raise ValueError(f'{field}.log_interval: {interval!r} must be an '
                         'integer >= 1.')
    sel = merged['selection']
    if sel['criterion'] not in CRITERIA:
        raise ValueError(f'{field}.selection.criterion: '
                         f'{sel["criterion"]!r}; valid choices are '
                         f'{list(CRITERIA)}.')
    if sel['edge_decision'] not in EDGE_ORDERS:
        raise ValueError(f'{field}.selection.edge_decision: '
                         f'{sel["edge_decision"]!r}; valid choices are '
                         f'{list(EDGE_ORDERS)}.')
    value = sel['tune_iters']
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f'{field}.selection.tune_iters: {value!r} must be '
                         'an integer >= 0.')
    value = sel['eval_batches']
    if value not in (None, 'auto') and (isinstance(value, bool) or
                                        not isinstance(value, int)
                                        or value < 1):
        raise ValueError(
            f'{field}.selection.eval_batches: {value!r} must be an integer '
            ">= 1, None (the whole alpha part) or 'auto' (the most batches "
            'that keep the selection within 10% of the search\'s time).')
    mult = sel['tune_lr_mult']
    if isinstance(mult, bool) or not isinstance(mult,
                                                (int, float)) or mult <= 0:
        raise ValueError(f'{field}.selection.tune_lr_mult: {mult!r} must be '
                         'a number > 0, e.g. 0.1.')
    return merged


@HOOKS.register_module()
class DASSearchHook(Hook):
    """Run the DAS search (bilevel first-order DARTS) in a training run.

    Settings (keys of the config's ``das_search`` section, or keyword
    arguments of the hook when the config has no such section; see
    :data:`SEARCH_DEFAULTS`):

    - ``train_portion`` (float): fraction of the training set for the
      weights, in (0, 1). Defaults to 0.5.
    - ``seed`` (int, optional): seed of the split and of the α part's data
      stream. Defaults to the runner's seed.
    - ``arch_optimizer`` (dict): the α optimiser. Defaults to Adam, lr 3e-4,
      betas (0.5, 0.999), weight decay 1e-3.
    - ``log_interval`` (int): iterations between logs of softmax(α).
    - ``allow_inverse_warp`` (bool): allow a fusion head with
      ``fusion='inverse_warp'`` during the search (the mixture's maps are
      those of its dominant op only). Defaults to False.
    - ``selection`` (dict): ``enable``, ``criterion`` (``'accuracy'``: top-1
      or pixel accuracy; ``'mIoU'``), ``edge_decision`` (``'random'`` or
      ``'sequential'``), ``tune_iters``, ``tune_lr_mult`` (a factor on
      each param group's initial learning rate), ``eval_batches`` (an int,
      None for the whole α part, or ``'auto'``: the most batches that keep
      the selection within 10% of the search's time; the default).

    What it writes to the work dir at the end (rank 0):
    ``policy.json`` (perturbation-selected; a
    :class:`~mmdas.policy.DASPolicy`, or a frozen cell file for a multi-node
    cell, see :mod:`mmdas.models.frozen_das_cell`), ``policy_argmax.json``,
    ``das_selection.json`` (every masking's metric and drop),
    ``das_alpha_history.json`` and ``das_alpha_history.png``.

    The α optimiser, the α data stream and the history are saved in
    checkpoints (``checkpoint['das_search']``); α itself is a model
    parameter. A resumed search continues exactly where it stopped.
    """

    priority = 'NORMAL'

    def __init__(self, **settings):
        self._own_settings = settings
        # validated now, so that a bad hook config fails when it is built
        self.settings = check_search_settings(settings, 'DASSearchHook')
        self.arch_optimizer = None
        self.arch_steps = 0
        self.history: List[dict] = []
        self._resumed_rng: Optional[dict] = None
        self._ready = False

    # ---- set-up -----------------------------------------------------------
    def _read_settings(self, runner) -> None:
        section = runner.cfg.get('das_search', None)
        if section is not None:
            if self._own_settings:
                raise ValueError(
                    'DASSearchHook: the search is configured twice, by the '
                    "config's `das_search` section and by the hook's "
                    f'arguments {sorted(self._own_settings)}; keep one '
                    '(the `das_search` section).')
            self.settings = check_search_settings(section, 'das_search')
            self._field = 'das_search'
        else:
            self._field = 'DASSearchHook'

    @staticmethod
    def find_cell(model, field: str = 'model') -> DASCell:
        """The model's single searchable :class:`DASCell`."""
        cells = [(name, m) for name, m in model.named_modules()
                 if isinstance(m, DASCell)]
        if not cells:
            raise ValueError(
                f'DASSearchHook: {field} has no DASCell to search; give the '
                'DAS data preprocessor one, e.g. '
                "data_preprocessor=dict(type='DASSegDataPreProcessor', "
                "policy=None, cell=dict(type='DASCell', ...)).")
        if len(cells) > 1:
            raise ValueError(f'DASSearchHook: {field} has several DASCells '
                             f'({[n for n, _ in cells]}); search one.')
        name, cell = cells[0]
        learnable = cell.alphas.requires_grad or (
            cell.learnable_magnitudes and cell.magnitudes.requires_grad)
        if isinstance(cell, FrozenDASCell) or not learnable or (
                len(cell.ops) < 2 and not cell.learnable_magnitudes):
            raise ValueError(
                f'DASSearchHook: {field}.{name} has nothing to learn '
                f'({type(cell).__name__} with ops {list(cell.ops)}); a '
                'search needs a DASCell with at least two ops and α that '
                'requires grad.')
        return cell

    def _check_fusion(self, model) -> None:
        if self.settings['allow_inverse_warp']:
            return
        for name, m in model.named_modules():
            if getattr(m, 'fusion', None) == 'inverse_warp':
                raise ValueError(
                    f"DASSearchHook: model.{name}.fusion='inverse_warp', but "
                    'while searching the frames are a mixture of ops, which '
                    'has no single inverse map. Set '
                    f"model.{name}.fusion='mean' in the search config, or "
                    f'{self._field}.allow_inverse_warp=True to warp back '
                    'with the dominant op.')

    def setup(self, runner) -> None:
        """Validate the run, split the data, build the α optimiser.

        Called at ``before_run`` by a training run and by
        ``tools/select_policy.py``.
        """
        self._read_settings(runner)
        s = self.settings
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        self.model = model
        self.cell = self.find_cell(model)
        self._check_fusion(model)
        if s['selection']['criterion'] == 'mIoU' and not is_segmentor(model):
            raise ValueError(f"{self._field}.selection.criterion: 'mIoU' "
                             "needs a segmentor; use 'accuracy'.")
        self.arch_params = [self.cell.alphas]
        if self.cell.learnable_magnitudes:
            self.arch_params.append(self.cell.magnitudes)
        self.arch_params = [p for p in self.arch_params if p.requires_grad]
        self._exclude_from_weight_optimizer(runner)

        self.seed = s['seed'] if s['seed'] is not None else runner.seed
        loop = runner.train_loop
        full = loop.dataloader.dataset
        if isinstance(full, DatasetPart):  # set up twice (select_policy)
            full = full.dataset
        self._full_dataset = full
        loader_cfg = copy.deepcopy(runner._train_dataloader)
        if not isinstance(loader_cfg, dict):
            loader_cfg = copy.deepcopy(runner.cfg.train_dataloader)
        weight_idx, arch_idx = split_indices(
            len(full), s['train_portion'], self.seed)
        self._check_sizes(len(full), len(weight_idx), len(arch_idx),
                          loader_cfg.get('batch_size', 1))
        self.split = dict(weights=weight_idx, arch=arch_idx)

        self._loader_cfg = loader_cfg
        weight_loader = self._build_loader(runner, weight_idx, self.seed)
        self._set_train_loader(runner, weight_loader)
        self.arch_loader = self._build_loader(runner, arch_idx, self.seed + 1)
        self.arch_iter = Cycle(self.arch_loader)
        self.arch_rng = RngStream(self.seed + 1)
        self.arch_optimizer = OPTIMIZERS.build(
            dict(s['arch_optimizer'], params=self.arch_params))
        self._ready = True

    def _build_loader(self, runner, indices: List[int], seed: int,
                      loader_cfg: Optional[dict] = None):
        """A dataloader of ``indices`` of the training set, built from
        ``loader_cfg`` (the training loader's by default) with ``seed``."""
        cfg = copy.deepcopy(loader_cfg or self._loader_cfg)
        cfg['dataset'] = DatasetPart(self._full_dataset, indices)
        return runner.build_dataloader(
            cfg,
            seed=seed,
            diff_rank_seed=runner._randomness_cfg.get('diff_rank_seed',
                                                      False))

    def _check_sizes(self, total, num_weight, num_arch, batch_size) -> None:
        _, world_size = get_dist_info()
        need = batch_size * world_size
        if min(num_weight, num_arch) < need:
            raise ValueError(
                f'DASSearchHook: the training set has {total} samples; '
                f'{self._field}.train_portion='
                f'{self.settings["train_portion"]} gives {num_weight} to the '
                f'weights and {num_arch} to α, but each part needs at least '
                f'batch_size x world_size = {batch_size} x {world_size} = '
                f'{need} samples for one batch per rank. Use a larger '
                'training set, a smaller train_dataloader.batch_size or a '
                'train_portion nearer 0.5.')

    @staticmethod
    def _set_train_loader(runner, loader) -> None:
        """Make the runner's loop train on ``loader`` (the weight part)."""
        loop = runner.train_loop
        old = loop.dataloader
        loop.dataloader = loader
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop
            loop.dataloader_iterator = type(loop.dataloader_iterator)(loader)
        elif hasattr(loop, '_max_epochs'):  # EpochBasedTrainLoop
            schedulers = runner.cfg.get('param_scheduler') or []
            if isinstance(schedulers, dict):
                schedulers = [schedulers]
            for i, cfg in enumerate(schedulers):
                if isinstance(cfg, dict) and cfg.get('convert_to_iter_based'):
                    raise ValueError(
                        f'DASSearchHook: param_scheduler[{i}] converts '
                        'epochs to iterations with the whole training set '
                        f"({len(old)} batches per epoch), but the search's "
                        f'epochs have {len(loader)}; give it by_epoch=False '
                        'and iteration counts, or convert_to_iter_based='
                        'False.')
            loop._max_iters = loop._max_epochs * len(loader)

    def _exclude_from_weight_optimizer(self, runner) -> None:
        """Remove α from every param group of the weight optimiser(s).

        Groups stay (possibly empty) so that param schedulers built on them
        keep their per-group values; no momentum, weight decay or gradient
        clipping of the weight optimiser ever sees α.
        """
        arch = {id(p) for p in self.arch_params}
        wrappers = (runner.optim_wrapper.values() if isinstance(
            runner.optim_wrapper, OptimWrapperDict) else
                    [runner.optim_wrapper])
        for wrapper in wrappers:
            for group in wrapper.optimizer.param_groups:
                group['params'] = [
                    p for p in group['params'] if id(p) not in arch
                ]

    # ---- runner points ------------------------------------------------------
    def before_run(self, runner) -> None:
        self.setup(runner)

    def before_train(self, runner) -> None:
        if self.arch_steps and self._resumed_rng is not None:
            # replay the α part's sampler to where the search stopped; the
            # pipeline's draws go to a throw-away stream, then the saved one
            # takes over
            with RngStream(self.seed + 3):
                for _ in range(self.arch_steps):
                    next(self.arch_iter)
            self.arch_rng.load_state_dict(self._resumed_rng)
            self._resumed_rng = None
        if not self.history:
            self._record(runner, 0, log=True)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self.arch_step(runner)

    def arch_step(self, runner) -> float:
        """One α step on the next batch of the α part; returns its loss."""
        model = self.model
        with self.arch_rng:
            batch = next(self.arch_iter)
            data = model.data_preprocessor(batch, True)
            losses = model._run_forward(data, mode='loss')
            loss, _ = model.parse_losses(losses)
            # gradients of α only: the weights' .grad stay untouched
            grads = torch.autograd.grad(
                loss, self.arch_params, allow_unused=True)
        _, world_size = get_dist_info()
        for param, grad in zip(self.arch_params, grads):
            grad = torch.zeros_like(param) if grad is None else grad
            if world_size > 1:
                all_reduce(grad, op='mean')  # α stays equal on every rank
            param.grad = grad
        self.arch_optimizer.step()
        self.arch_optimizer.zero_grad(set_to_none=True)
        self.arch_steps += 1
        value = float(loss.detach())
        runner.message_hub.update_scalar('train/arch_loss', value)
        return value

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        # the weight step's backward also reached α (it is in the forward
        # pass); the weight optimiser does not hold α, so that gradient is
        # never applied: drop it
        for param in self.arch_params:
            param.grad = None
        step = runner.iter + 1
        if step % self.settings['log_interval'] == 0:
            self._record(runner, step, log=True)

    def after_train(self, runner) -> None:
        if not self.history or self.history[-1]['iter'] != runner.iter:
            self._record(runner, runner.iter, log=True)
        if is_main_process():
            self.write_history(runner.work_dir)
        if self.settings['selection']['enable']:
            self.select(runner)

    # ---- progress -----------------------------------------------------------
    def _record(self, runner, step: int, log: bool) -> None:
        weights = torch.softmax(self.cell.alphas.detach().float(), -1)
        self.history.append(
            dict(iter=step, alphas=self.cell.alphas.detach().cpu().tolist(),
                 weights=weights.cpu().tolist()))
        scalars = {
            f'das_search/edge{e}/{op}': float(weights[e, o])
            for e in range(weights.shape[0])
            for o, op in enumerate(self.cell.ops)
        }
        runner.visualizer.add_scalars(scalars, step=step)
        if log:
            rows = [
                f'edge {e}: ' + ', '.join(
                    f'{op} {float(weights[e, o]):.4f}'
                    for o, op in enumerate(self.cell.ops))
                for e in range(weights.shape[0])
            ]
            runner.logger.info(f'DAS search, iter {step}, softmax(alpha): ' +
                               ('\n  ' if len(rows) > 1 else '') +
                               '\n  '.join(rows))

    def write_history(self, work_dir: str) -> None:
        """``das_alpha_history.json`` and a plot of softmax(α) per edge."""
        write_json_atomic(osp.join(work_dir, HISTORY_FILE),
                          dict(ops=list(self.cell.ops), history=self.history))
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        num_edges = self.cell.num_edges
        cols = min(num_edges, 4)
        rows = -(-num_edges // cols)
        fig, axes = plt.subplots(
            rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
        iters = [h['iter'] for h in self.history]
        for e in range(num_edges):
            ax = axes[e // cols][e % cols]
            for o, op in enumerate(self.cell.ops):
                ax.plot(iters, [h['weights'][e][o] for h in self.history],
                        label=op)
            ax.set_title(f'edge {e}')
            ax.set_xlabel('iteration')
            ax.set_ylabel('softmax(α)')
        for e in range(num_edges, rows * cols):
            axes[e // cols][e % cols].axis('off')
        axes[0][0].legend(fontsize='small')
        fig.tight_layout()
        fig.savefig(osp.join(work_dir, HISTORY_PLOT), dpi=80)
        plt.close(fig)

    # ---- checkpoints --------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['das_search'] = dict(
            arch_optimizer=self.arch_optimizer.state_dict(),
            arch_steps=self.arch_steps,
            arch_rng=self.arch_rng.state_dict(),
            history=self.history,
            seed=self.seed,
            train_portion=self.settings['train_portion'])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('das_search')
        if state is None or not runner._resume:
            return
        if state['seed'] != self.seed or state['train_portion'] != \
                self.settings['train_portion']:
            raise ValueError(
                'DASSearchHook: the checkpoint was searched with seed '
                f"{state['seed']} and train_portion "
                f"{state['train_portion']}, this run has {self.seed} and "
                f"{self.settings['train_portion']}: the parts would differ.")
        self.arch_optimizer.load_state_dict(state['arch_optimizer'])
        self.arch_steps = state['arch_steps']
        self.history = state['history']
        self._resumed_rng = state['arch_rng']

    # ---- selection ----------------------------------------------------------
    def selection(self, runner) -> SearchSelection:
        """The end-of-search selection of this (set-up) search."""
        return SearchSelection(
            runner,
            cell=self.cell,
            model=self.model,
            settings=self.settings,
            seed=self.seed,
            split=self.split,
            build_loader=partial(self._build_loader, runner),
            loader_cfg=self._loader_cfg,
            arch_params=self.arch_params)

    def select(self, runner) -> dict:
        """Perturbation-based and argmax selection
        (:class:`~mmdas.engine.SearchSelection`); writes the policies and the
        record to the work dir (rank 0) and returns the record."""
        return self.selection(runner).run()
