"""Cost of the end-of-search selection against the search, and its noise.

On the embedded demo search config (``das_search_deeplabv3plus_r18_embedded``,
the demo's data set, batch and crop), this

1. times ``--search-iters`` search iterations (α step, then weight step, each
   loading its batch) alternating with as many evaluation batches of the
   selection (loading and a forward pass without gradients): the cost of an
   iteration in evaluation batches, and from it the selection/search time
   ratio of the config's whole search (``train_cfg.max_iters``) with its
   ``eval_batches`` (``'auto'`` by default);
2. runs that selection;
3. from the per-batch metrics of that selection, the sampling noise of each
   masked op's drop when only k of the batches are used (``--subsets``
   random subsets of k batches): the standard deviation of the drop and how
   often the kept op agrees with the one the whole evaluation keeps.

The supernet is trained for ``--search-iters`` iterations only, so its drops
are those of a young supernet: the noise figures say how much the choice of
batches moves a drop, not how large a trained supernet's drops are.

Results go to ``--out`` (JSON); a rerun with the same ``--out`` prints them
without measuring again (``--force`` remeasures).

Example (CPU)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/bench_selection_cost.py \
        --search-iters 20
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmdas  # noqa: F401
from mmdas.datasets import make_embedded_segmentation
from mmdas.datasets.embedded import DEMO_SEG_SET
from mmdas.engine import DASSearchHook, task_metric
from mmdas.engine.data_streams import Cycle, RngStream

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_search_cost import load_or_measure  # noqa: E402
SEARCH = osp.join(REPO, 'configs', 'das_search_deeplabv3plus_r18_embedded.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=SEARCH)
    parser.add_argument('--data-root',
                        help="where the demo's embedded-digits set is "
                        '(written there when missing; default: a '
                        'temporary folder)')
    parser.add_argument('--search-iters', type=int, default=20,
                        help='search iterations trained and timed')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--eval-batches', type=int,
                        help="override the config's selection.eval_batches")
    parser.add_argument('--subsets', type=int, default=500,
                        help='random batch subsets per size for the noise')
    parser.add_argument('--out',
                        default='work_dirs/bench_selection_cost.json')
    parser.add_argument('--force', action='store_true',
                        help='measure again even if --out exists')
    return parser.parse_args()


def measure(args):
    tmp = tempfile.mkdtemp(prefix='bench_selection_')
    root = args.data_root or osp.join(tmp, 'data')
    if not osp.isdir(osp.join(root, 'img_dir')):
        print(f'writing the demo set to {root}', flush=True)
        make_embedded_segmentation(root, seed=0, **DEMO_SEG_SET)
    cfg = Config.fromfile(args.config)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = root
    if args.eval_batches:
        cfg.das_search.selection.eval_batches = args.eval_batches
    cfg.work_dir = osp.join(tmp, 'work')
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    hook = [h for h in runner.hooks if isinstance(h, DASSearchHook)][0]
    hook.setup(runner)
    model = runner.model
    model.train()
    weights = iter(runner.train_dataloader)

    selection = hook.selection(runner)
    criterion = selection.sel['criterion']
    # search iterations and evaluation batches alternate, so that load
    # changes on a shared machine hit both alike
    sample = Cycle(selection.eval_loader)
    times = dict(search_iteration=[], eval_batch=[])
    for i in range(args.warmup + args.search_iters):
        start = time.perf_counter()
        hook.arch_step(runner)
        model.train_step(next(weights), optim_wrapper=runner.optim_wrapper)
        for param in hook.arch_params:
            param.grad = None
        middle = time.perf_counter()
        task_metric(model, [next(sample)], criterion)
        end = time.perf_counter()
        if i >= args.warmup:
            times['search_iteration'].append(middle - start)
            times['eval_batch'].append(end - middle)
        print(f'[{i + 1}/{args.warmup + args.search_iters}] search iteration '
              f'{middle - start:.2f} s, evaluation batch {end - middle:.2f} s',
              flush=True)
        model.train()

    per_batch = []  # one list of per-batch metrics per evaluation

    def evaluate():
        # the selection's own evaluation, one batch at a time (BN uses the
        # batch's statistics either way, so the metrics are the same)
        with RngStream(selection.seed + 4):
            values = [task_metric(model, [batch], criterion)
                      for batch in selection._batches()]
        per_batch.append(values)
        return float(np.mean(values))

    selection.evaluate = evaluate
    selection.runner.logger.setLevel('INFO')
    record = selection.run()
    search_iters = cfg.train_cfg.max_iters
    t_iter = statistics.mean(times['search_iteration'])
    t_eval = statistics.mean(times['eval_batch'])
    evaluations = len(per_batch)
    return dict(
        settings=dict(config=osp.relpath(args.config, REPO),
                      batch=cfg.train_dataloader.batch_size,
                      search_iters_timed=args.search_iters,
                      threads=torch.get_num_threads(),
                      device=str(next(model.parameters()).device)),
        times=times,
        search_iteration_s=t_iter,
        eval_batch_s=t_eval,
        iter_cost_in_eval_batches=t_iter / t_eval,
        search_iters=search_iters,
        eval_batches=record['eval_batches'],
        evaluations=evaluations,
        # from the alternating timings: the selection's share at this load
        ratio=evaluations * record['eval_batches'] * t_eval /
        (search_iters * t_iter),
        # the selection as run (after the alternating timings: another load)
        selection_seconds=record['seconds'],
        kept=record['perturbation']['genotype'],
        noise=noise_table(record, per_batch, args.subsets))


def noise_table(record, per_batch, subsets):
    """Drops' std and kept-op agreement on random subsets of k batches."""
    step, = record['perturbation']['steps']  # a single-edge cell
    ops = list(step['masked'])
    base = np.array(per_batch[0])
    masked = np.array(per_batch[1:1 + len(ops)])
    full = (base.mean() - masked.mean(1))
    kept = ops[int(np.argmax(full))]
    rng = np.random.default_rng(0)
    rows = []
    total = len(base)
    for k in sorted({1, 2, 5, 10, 20, 50, total // 2, total}):
        if k > total:
            continue
        drops, agree = [], 0
        for _ in range(subsets):
            idx = rng.choice(total, size=k, replace=False)
            d = base[idx].mean() - masked[:, idx].mean(1)
            drops.append(d)
            agree += ops[int(np.argmax(d))] == kept
        drops = np.array(drops)
        rows.append(dict(batches=k, drop_std=drops.std(0).tolist(),
                         mean_drop_std=float(drops.std(0).mean()),
                         agreement=agree / subsets))
    return dict(ops=ops, full_drops=full.tolist(), kept=kept, rows=rows)


def main():
    args = parse_args()
    result = load_or_measure(args, measure)
    print(f"search iteration {result['search_iteration_s']:.2f} s, "
          f"evaluation batch {result['eval_batch_s']:.2f} s (means, "
          'alternating): one search iteration costs '
          f"{result['iter_cost_in_eval_batches']:.2f} evaluation batches")
    print(f"selection of the {result['search_iters']}-iteration search: "
          f"{result['evaluations']} evaluations of {result['eval_batches']} "
          f"batches; selection/search = {result['ratio']:.3f} (the selection "
          f"as run took {result['selection_seconds'] / 60:.1f} min)")
    noise = result['noise']
    print('drops on all batches: ' + ', '.join(
        f'{op} {d:+.3f}' for op, d in zip(noise['ops'],
                                          noise['full_drops'])))
    print('| batches | drop std (mean over ops) | kept op as with all |')
    print('|---|---|---|')
    for row in noise['rows']:
        print(f"| {row['batches']} | {row['mean_drop_std']:.3f} | "
              f"{row['agreement']:.0%} |")


if __name__ == '__main__':
    main()
