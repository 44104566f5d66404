"""Cost of one DAS search iteration against one ordinary training iteration.

A search iteration is DASSearchHook's α step (forward and α-only backward on
a batch of the α part, Adam on α) followed by the weight step of the
supernet (the DASCell's mixture of ops) on a batch of the weight part. It is
compared, on the same batch size and crop, with

- the weight step of the same supernet alone, and
- one training step of the training twin (one fixed transform, the video
  network the search is for).

Each step includes loading its batch. The three are interleaved, so that
load changes on a shared machine hit all of them; medians are reported.
The goal is a search iteration of at most 2.5 x an ordinary one.

The models come from the embedded-digits configs (written to a temporary
data root). Results go to ``--out`` (JSON); a rerun with the same ``--out``
prints them without measuring again (``--force`` remeasures).

Example (CPU)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/bench_search_cost.py \
        --crop 96 --batch 4 --iters 5
"""
import argparse
import json
import os
import os.path as osp
import statistics
import tempfile
import time

import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmdas  # noqa: F401
from mmdas.datasets import make_embedded_segmentation
from mmdas.engine import DASSearchHook

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEARCH = osp.join(REPO, 'configs', 'das_search_deeplabv3plus_r18_embedded.py')
TWIN = osp.join(REPO, 'configs', 'das_deeplabv3plus_r18_embedded.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--search-config', default=SEARCH)
    parser.add_argument('--twin-config', default=TWIN)
    parser.add_argument('--crop', type=int, default=96)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--iters', type=int, default=5,
                        help='measured repetitions of each step')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--out', default='work_dirs/bench_search_cost.json')
    parser.add_argument('--force', action='store_true',
                        help='measure again even if --out exists')
    return parser.parse_args()


def build_runner(config, root, crop, batch, work_dir, name):
    """A runner of an embedded-digits config on ``root`` at ``crop``."""
    cfg = Config.fromfile(config)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = root
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline[2].scale = pipeline[3].crop_size = (crop, crop)
    cfg.train_dataloader.batch_size = batch
    cfg.model.data_preprocessor.size = (crop, crop)
    cfg.work_dir = work_dir
    cfg.experiment_name = name
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.model.train()
    return runner


def measure(args):
    tmp = tempfile.mkdtemp(prefix='bench_search_')
    root = osp.join(tmp, 'data')
    # 4 batches per part, so that both parts cycle like a real search
    make_embedded_segmentation(root, num_train=8 * args.batch, num_val=1,
                               canvas=args.crop, seed=0)
    search = build_runner(args.search_config, root, args.crop, args.batch,
                          osp.join(tmp, 'search'), 'bench_search')
    hook = [h for h in search.hooks if isinstance(h, DASSearchHook)][0]
    hook.setup(search)
    twin = build_runner(args.twin_config, root, args.crop, args.batch,
                        osp.join(tmp, 'twin'), 'bench_twin')
    iters = {
        'search': iter(search.train_dataloader),
        'twin': iter(twin.train_dataloader)
    }

    def next_batch(key, runner):
        try:
            return next(iters[key])
        except StopIteration:
            iters[key] = iter(runner.train_dataloader)
            return next(iters[key])

    def weight_step():
        search.model.train_step(
            next_batch('search', search), optim_wrapper=search.optim_wrapper)
        for param in hook.arch_params:
            param.grad = None

    def search_step():
        hook.arch_step(search)
        weight_step()

    def twin_step():
        twin.model.train_step(
            next_batch('twin', twin), optim_wrapper=twin.optim_wrapper)

    steps = dict(search_iteration=search_step,
                 supernet_weight_step=weight_step,
                 twin_training_step=twin_step)
    times = {name: [] for name in steps}
    def sync():  # CUDA runs asynchronously: time finished work only
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    for rep in range(args.warmup + args.iters):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            elapsed = time.perf_counter() - start
            if rep >= args.warmup:
                times[name].append(elapsed)
            print(f'[{rep + 1}/{args.warmup + args.iters}] {name}: '
                  f'{elapsed:.3f} s' + (' (warm-up)'
                                        if rep < args.warmup else ''),
                  flush=True)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return dict(
        settings=dict(crop=args.crop, batch=args.batch, iters=args.iters,
                      frames=hook.cell.num_frames,
                      ops=list(hook.cell.ops),
                      device=str(next(search.model.parameters()).device),
                      threads=torch.get_num_threads(),
                      search_config=osp.relpath(args.search_config, REPO),
                      twin_config=osp.relpath(args.twin_config, REPO)),
        times=times,
        medians=medians,
        ratio_to_twin=medians['search_iteration'] /
        medians['twin_training_step'],
        ratio_to_supernet_step=medians['search_iteration'] /
        medians['supernet_weight_step'])


def load_or_measure(args, measure) -> dict:
    """The result in ``args.out``, or ``measure(args)`` written there
    (always with ``args.force``)."""
    if osp.exists(args.out) and not args.force:
        with open(args.out) as f:
            result = json.load(f)
        print(f'{args.out} exists (use --force to measure again)')
        return result
    result = measure(args)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    return result


def main():
    args = parse_args()
    result = load_or_measure(args, measure)
    for name, value in result['medians'].items():
        print(f'{name}: {value:.3f} s (median)')
    print(f"search iteration / twin training step: "
          f"{result['ratio_to_twin']:.2f} (goal <= 2.5)")
    print(f"search iteration / supernet weight step: "
          f"{result['ratio_to_supernet_step']:.2f}")


if __name__ == '__main__':
    main()
