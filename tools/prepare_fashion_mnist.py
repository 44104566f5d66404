"""Decompress Debian's Fashion-MNIST into ``data/fashion_mnist``.

Usage: python tools/prepare_fashion_mnist.py [--src DIR] [--out DIR]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdas.datasets.fashion_mnist import (DEBIAN_FASHION_MNIST,  # noqa: E402
                                          prepare_fashion_mnist)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--src', default=DEBIAN_FASHION_MNIST)
    parser.add_argument('--out', default='data/fashion_mnist')
    args = parser.parse_args()
    for path in prepare_fashion_mnist(args.out, args.src, progress=True):
        print(path)


if __name__ == '__main__':
    main()
