"""Time ``tools/check_dataset.py`` on Cityscapes-size files.

Writes ``--num`` image/label pairs of 2048x1024 in Cityscapes' folder layout
(``leftImg8bit/train/bench/*_leftImg8bit.png``,
``gtFine/train/bench/*_gtFine_labelTrainIds.png``; smooth images and
blocky 19-class labels, so that the PNGs are about the size of real ones)
under ``--root``, then checks the train split of
``configs/plain_deeplabv3plus_cityscapes.py`` on them with each number of
reader threads in ``--workers`` and prints the rate in files/s. Files that
exist are kept, so a second run only times.

Example::

    OMP_NUM_THREADS=1 python bench/bench_check_dataset.py \\
        --root /tmp/city_bench --num 100 --workers 1 2 8
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from mmengine.config import Config  # noqa: E402

import mmdas  # noqa: E402,F401
from mmdas.datasets.checks import check_dataset_config  # noqa: E402

CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
    'plain_deeplabv3plus_cityscapes.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', required=True, help='where to write data')
    parser.add_argument('--num', type=int, default=100, help='pairs')
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 8])
    return parser.parse_args()


def write_pairs(root, num, height=1024, width=2048):
    rng = np.random.default_rng(0)
    img_dir = osp.join(root, 'leftImg8bit', 'train', 'bench')
    ann_dir = osp.join(root, 'gtFine', 'train', 'bench')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(num):
        stem = f'bench_{i:06d}_000019'
        img_path = osp.join(img_dir, f'{stem}_leftImg8bit.png')
        ann_path = osp.join(ann_dir, f'{stem}_gtFine_labelTrainIds.png')
        if osp.exists(img_path) and osp.exists(ann_path):
            continue
        coarse = rng.integers(0, 255, (16, 32, 3)).astype(np.uint8)
        img = cv2.resize(coarse, (width, height),
                         interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, 8, img.shape, dtype=np.uint8))
        label = cv2.resize(
            rng.integers(0, 19, (16, 32)).astype(np.uint8), (width, height),
            interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(ann_path, label)
        cv2.imwrite(img_path, img)
        print(f'wrote {i + 1}/{num}', end='\r', flush=True)
    print()


def main():
    args = parse_args()
    write_pairs(args.root, args.num)
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset.data_root = args.root
    print('| reader threads | files | seconds | files/s |')
    print('|---|---|---|---|')
    for workers in args.workers:
        report = check_dataset_config(
            cfg, splits=('train', ), workers=workers, progress=False,
            log=lambda _: None)
        assert report.ok, report.summary()
        print(f'| {workers} | {report.num_files} | {report.seconds:.1f} | '
              f'{report.files_per_second:.1f} |', flush=True)


if __name__ == '__main__':
    main()
