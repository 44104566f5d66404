"""Bytes autograd keeps for the backward pass: 2D, TSM and GSF ResNets.

One forward pass of each backbone on the same frames, in train mode, under
``torch.autograd.graph.saved_tensors_hooks`` that record every distinct
storage autograd saves: what the start of the backward pass holds besides
the weights. Unlike a process's peak memory this is exact and the same on
every machine, so it isolates what the temporal modules add.

Example::

    PYTHONPATH=. python bench/bench_kept_memory.py --depth 50 --crop 112 \\
        --batch 2 --frames 8
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402


def kept_for_backward(fn):
    """Run ``fn()``; return ``(its result, bytes of the distinct storages
    autograd saved for the backward pass meanwhile)``."""
    kept = {}

    def pack(t):
        storage = t.untyped_storage()  # views share their base's storage
        kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(kept.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--crop', type=int, default=112)
    parser.add_argument('--batch', type=int, default=2, help='images')
    parser.add_argument('--frames', type=int, default=8)
    args = parser.parse_args()
    import mmdas  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmpretrain.models.backbones import ResNet

    from mmdas.models.backbones import GSFResNet
    init_default_scope('mmpretrain')
    n, t, s = args.batch, args.frames, args.crop
    frames = torch.randn(n * t, 3, s, s)
    arms = {
        '2D': (ResNet(depth=args.depth), frames),
        'TSM': (GSFResNet(depth=args.depth, num_frames=t,
                          temporal_module='tsm'), frames.view(n, -1, s, s)),
        'GSF': (GSFResNet(depth=args.depth, num_frames=t),
                frames.view(n, -1, s, s)),
    }
    print(f'ResNet-{args.depth}, {n} images x {t} frames of {s}x{s}, '
          'train mode')
    base = None
    for name, (net, x) in arms.items():
        net.train()
        _, kept = kept_for_backward(lambda: net(x))
        base = base or kept
        print(f'{name}: {kept / 2**30:.3f} GiB kept for backward, '
              f'{kept / base:.3f} x 2D', flush=True)


if __name__ == '__main__':
    main()
