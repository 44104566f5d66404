"""Do threads speed up decoding? The core of the data check, without mmdas.

``mmdas.datasets.checks`` reads files in a pool of threads, which helps only
if the decoders release the GIL. This script encodes ``--num`` Cityscapes-
size pairs in memory (a 2048x1024 PNG image and a 19-class PNG label, as
``bench_check_dataset.py`` writes them), then decodes them as the check does
(image with OpenCV, label with Pillow, a ``bincount`` of the label ids) with
each number of threads in ``--threads`` and prints files/s. It needs only
numpy, OpenCV and Pillow, so it runs on any machine; no disk I/O is timed.

Example::

    python bench/bench_decode_threads.py --num 48 --threads 1 4 16 32
"""
import argparse
import io
import os
import time
from multiprocessing.pool import ThreadPool

import cv2
import numpy as np
from PIL import Image


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num', type=int, default=48, help='pairs')
    parser.add_argument('--threads', type=int, nargs='+',
                        default=[1, 4, 16])
    return parser.parse_args()


def encode_pairs(num):
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(num):
        img = cv2.resize(
            rng.integers(0, 255, (16, 32, 3)).astype(np.uint8), (2048, 1024),
            interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, 8, img.shape, dtype=np.uint8))
        label = cv2.resize(
            rng.integers(0, 19, (16, 32)).astype(np.uint8), (2048, 1024),
            interpolation=cv2.INTER_NEAREST)
        pairs.append((cv2.imencode('.png', img)[1].tobytes(),
                      cv2.imencode('.png', label)[1].tobytes()))
        print(f'encoded {i + 1}/{num}', end='\r', flush=True)
    print()
    return pairs


def decode(pair):
    img = cv2.imdecode(np.frombuffer(pair[0], np.uint8), cv2.IMREAD_COLOR)
    label = np.array(Image.open(io.BytesIO(pair[1])))
    np.bincount(label.ravel(), minlength=256)
    return img.shape[:2] == label.shape[:2]


def main():
    args = parse_args()
    cv2.setNumThreads(1)  # one decode per thread, as in the check
    print(f'usable cores: {len(os.sched_getaffinity(0))}, OpenCV '
          f'{cv2.__version__}')
    pairs = encode_pairs(args.num)
    print('| threads | files/s |')
    print('|---|---|')
    for threads in args.threads:
        with ThreadPool(threads) as pool:
            start = time.perf_counter()
            assert all(pool.map(decode, pairs, chunksize=1))
            seconds = time.perf_counter() - start
        print(f'| {threads} | {2 * len(pairs) / seconds:.1f} |', flush=True)


if __name__ == '__main__':
    main()
