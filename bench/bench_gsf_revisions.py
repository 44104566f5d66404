"""GSF's step cost now against an earlier revision of it, in one process.

One training step (forward, cross-entropy on the frame-averaged logits,
backward, SGD) of three ResNets on the same frames, interleaved step by step
so that load changes hit all of them: the 2D ResNet (mmpretrain), the
GSF-ResNet with this checkout's ``GateShiftFuse``, and the same GSF-ResNet
whose ``GateShiftFuse`` modules run the code of ``mmdas/models/temporal.py``
at ``--rev`` (read with ``git show``; same parameters, same init). For every
T it prints the median step times and GSF / 2D for both, from the medians
and as the median of the per-round ratios (each round runs the three arms
back to back).

Example (the figures in docs/benchmarks.md)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/bench_gsf_revisions.py \\
        --rev d0cd783 --frames 1 4 8 --iters 10
"""
import argparse
import importlib.util
import os.path as osp
import subprocess
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import torch  # noqa: E402

import mmdas.models.temporal as current  # noqa: E402
from bench_video_cost import (Classifier, median, per_round,  # noqa: E402
                              timed_step)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_revision(rev: str):
    """``mmdas/models/temporal.py`` at ``rev``, as a module."""
    source = subprocess.run(
        ['git', 'show', f'{rev}:mmdas/models/temporal.py'], cwd=REPO,
        check=True, capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile('w', suffix='.py') as f:
        f.write(source)
        f.flush()
        spec = importlib.util.spec_from_file_location('temporal_at_rev',
                                                      f.name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('--rev', required=True,
                        help='git revision of the GSF to compare with')
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--crop', type=int, default=112)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--frames', type=int, nargs='+', default=[1, 4, 8])
    parser.add_argument('--iters', type=int, default=10)
    args = parser.parse_args()
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    old = load_revision(args.rev)
    print(f'ResNet-{args.depth}, {args.batch} images of {args.crop}x'
          f'{args.crop}, median of {args.iters} steps; CPU, '
          f'{torch.get_num_threads()} threads; GSF at {args.rev} vs now')
    print('| T | 2D (ms) | GSF at rev (ms) | GSF now (ms) | rev / 2D | '
          'now / 2D | rev / 2D, per round | now / 2D, per round |')
    print('|---|---|---|---|---|---|---|---|')
    for frames in args.frames:
        torch.manual_seed(0)
        images = torch.randn(args.batch, 3, args.crop, args.crop)
        video = images[:, None].expand(-1, frames, -1, -1, -1).contiguous()
        labels = torch.randint(0, 1000, (args.batch, ))
        arms = {}
        for name in ('2D', 'rev', 'now'):
            torch.manual_seed(1)
            model = Classifier('2D' if name == '2D' else 'GSF', args.depth,
                               frames, 1000).train()
            if name == 'rev':  # the same modules, the revision's code
                for m in model.modules():  # (its TemporalConv2d too: it
                    # hands GSF the conv output in place only if the
                    # GSF is of its own module's class)
                    for cls in ('GateShiftFuse', 'TemporalConv2d'):
                        if type(m) is getattr(current, cls):
                            m.__class__ = getattr(old, cls)
            arms[name] = (model, torch.optim.SGD(
                model.parameters(), lr=1e-3, momentum=0.9))
        times = {name: [] for name in arms}
        for it in range(args.iters + 1):  # the first round is a warm-up
            for name, (model, opt) in arms.items():
                sec, _ = timed_step(model, opt, video, labels, 'cpu')
                if it:
                    times[name].append(sec)
        med = {name: median(v) for name, v in times.items()}
        print(f'| {frames} | {1e3 * med["2D"]:.0f} | {1e3 * med["rev"]:.0f} '
              f'| {1e3 * med["now"]:.0f} | {med["rev"] / med["2D"]:.3f} | '
              f'{med["now"] / med["2D"]:.3f} | '
              f'{per_round(times, "rev", "2D"):.3f} | '
              f'{per_round(times, "now", "2D"):.3f} |', flush=True)


if __name__ == '__main__':
    main()
