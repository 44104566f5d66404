"""Check the data a config trains and tests on, before a run finds out.

Reads every image and label of the config's train, val and test sets (as the
config's own loading transforms would) and names each file that is missing,
does not decode, or whose label is not single-channel, not its image's size,
or holds class ids outside ``[0, num_classes)`` other than ``ignore_index``;
also empty or missing folders. Exits with status 1 if anything is wrong.

    python tools/check_dataset.py CONFIG [--splits train val test]
        [--workers N] [--cfg-options k=v ...]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdas  # noqa: E402,F401  (compat fixes + registration)
from mmengine.config import Config, DictAction  # noqa: E402

from mmdas.datasets.checks import check_dataset_or_exit  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description='Check every file of the data sets of a config')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--splits',
        nargs='+',
        choices=['train', 'val', 'test'],
        default=['train', 'val', 'test'],
        help='which data loaders to check (default: all three)')
    parser.add_argument(
        '--workers',
        type=int,
        default=None,
        help='threads that read files (default: CPU cores + 4, at most 32)')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    check_dataset_or_exit(
        cfg, splits=args.splits, workers=args.workers,
        progress=not args.no_progress)


if __name__ == '__main__':
    main()
