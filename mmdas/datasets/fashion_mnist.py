"""Prepare the real Fashion-MNIST for mmpretrain's ``FashionMNIST`` class.

Debian's ``dataset-fashion-mnist`` package ships the original gzipped IDX
files; mmpretrain reads the *uncompressed* files from ``data_root`` (and with
``download=False`` fetches nothing), so they are decompressed once.
"""
import gzip
import os
import os.path as osp
from typing import List

DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'
CHUNK = 1 << 20  # decompress 1 MiB at a time
IDX_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
             't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


def prepare_fashion_mnist(dst: str = 'data/fashion_mnist',
                          src: str = DEBIAN_FASHION_MNIST,
                          progress: bool = False) -> List[str]:
    """Decompress the four IDX files of ``src`` into ``dst``.

    Args:
        dst (str): The config's ``data_root``.
        src (str): Folder with the ``*.gz`` files. Defaults to the Debian
            package's folder (``apt-get install dataset-fashion-mnist``).
        progress (bool): Show a progress bar over the bytes written.
            Defaults to False.

    Returns:
        list[str]: Paths of the decompressed files.
    """
    os.makedirs(dst, exist_ok=True)
    missing = []
    for name in IDX_FILES:
        source = osp.join(src, name + '.gz')
        if not osp.exists(osp.join(dst, name)):
            if not osp.exists(source):
                raise FileNotFoundError(
                    f'{source} not found: install the Debian package with '
                    '`apt-get install -y dataset-fashion-mnist` or pass '
                    '--src to a folder with the gzipped IDX files.')
            missing.append(name)
    bar = None
    if progress and missing:
        from mmengine.utils import ProgressBar
        print(f'decompressing {len(missing)} Fashion-MNIST files into {dst} '
              '(progress in MiB written)', flush=True)
        # gzip stores the uncompressed size (mod 2**32) in its last 4 bytes
        bar = ProgressBar(sum(
            -(-_gzip_size(osp.join(src, name + '.gz')) // CHUNK)
            for name in missing))
    for name in missing:
        target = osp.join(dst, name)
        with gzip.open(osp.join(src, name + '.gz'), 'rb') as fin, \
                open(target + '.part', 'wb') as fout:
            while True:
                chunk = fin.read(CHUNK)
                if not chunk:
                    break
                fout.write(chunk)
                if bar:
                    bar.update()
        os.replace(target + '.part', target)
    if bar:
        print(flush=True)  # end the progress bar's line
    return [osp.join(dst, name) for name in IDX_FILES]


def _gzip_size(path: str) -> int:
    """Uncompressed size recorded in a gzip file's trailer."""
    with open(path, 'rb') as f:
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), 'little')
