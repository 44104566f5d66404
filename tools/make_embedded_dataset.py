"""Write the embedded MNIST-digits data sets (real digits, offline).

Examples:
    python tools/make_embedded_dataset.py                 # segmentation set
    python tools/make_embedded_dataset.py --task cls \\
        --root data/embedded_digits_cls                    # classification set
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdas.datasets.embedded import (  # noqa: E402
    DEMO_SEG_LAYOUT, DEMO_SEG_SET, EMBEDDED_SETS, MARKER,
    ensure_embedded_dataset)


DEFAULTS = {
    # the demo's set, so that `make demo` finds it already written
    'seg': dict(root='data/embedded_digits',
                num_train=DEMO_SEG_SET['num_train'],
                num_val=DEMO_SEG_SET['num_val'], size=DEMO_SEG_SET['canvas'],
                items_per_image=DEMO_SEG_LAYOUT['items_per_image'],
                scale_range=DEMO_SEG_LAYOUT['scale_range'],
                overlap=not DEMO_SEG_LAYOUT['separate']),
    'cls': dict(root='data/embedded_digits_cls',
                **EMBEDDED_SETS['data/embedded_digits_cls'][1]),
}


def parse_args():
    parser = argparse.ArgumentParser(
        description='Write the embedded MNIST-digits data set')
    parser.add_argument(
        '--task', choices=['seg', 'cls'], default='seg',
        help='seg: BaseSegDataset layout (11 classes); cls: CustomDataset '
        'folder-per-class layout (10 classes)')
    parser.add_argument('--root', help='output folder (default: '
                        'data/embedded_digits, or data/embedded_digits_cls)')
    parser.add_argument('--num-train', type=int, help='training images')
    parser.add_argument('--num-val', type=int, help='validation images')
    parser.add_argument('--size', type=int, help='image side in pixels')
    parser.add_argument(
        '--items-per-image', type=int,
        help='seg only: most digits pasted on one canvas (default: the '
        "demo set's)")
    parser.add_argument(
        '--scale-range', type=float, nargs=2, metavar=('LOW', 'HIGH'),
        help='seg only: digit box side as a fraction of the canvas '
        "(default: the demo set's)")
    parser.add_argument(
        '--overlap', action='store_true', default=None,
        help='seg only: let digits overlap (the demo set keeps them apart)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--force', action='store_true',
        help='regenerate even if the same set exists')
    args = parser.parse_args()
    for key, value in DEFAULTS[args.task].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def main():
    args = parse_args()
    kwargs = dict(num_train=args.num_train, num_val=args.num_val,
                  seed=args.seed)
    if args.task == 'seg':
        kwargs.update(
            canvas=args.size,
            items_per_image=args.items_per_image,
            scale_range=tuple(args.scale_range),
            separate=not args.overlap)
    else:
        kwargs.update(size=args.size)
    if args.force:
        marker = osp.join(args.root, MARKER)
        if osp.exists(marker):
            os.remove(marker)
    start = time.time()
    made = ensure_embedded_dataset(
        args.root, task=args.task, progress=True, **kwargs)
    state = f'written in {time.time() - start:.1f} s' if made else \
        'already present with these parameters'
    print(f'{args.task} set at {osp.abspath(args.root)}: {state} '
          f'({args.num_train} train / {args.num_val} val images)')


if __name__ == '__main__':
    main()
