"""Prepare the real Fashion-MNIST for mmpretrain's ``FashionMNIST`` class.

Debian's ``dataset-fashion-mnist`` package ships the original gzipped IDX
files; mmpretrain reads the *uncompressed* files from ``data_root`` (and with
``download=False`` fetches nothing), so they are decompressed once.
"""
import gzip
import os
import os.path as osp
import shutil
from typing import List

DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'
IDX_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
             't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


def prepare_fashion_mnist(dst: str = 'data/fashion_mnist',
                          src: str = DEBIAN_FASHION_MNIST) -> List[str]:
    """Decompress the four IDX files of ``src`` into ``dst``.

    Args:
        dst (str): The config's ``data_root``.
        src (str): Folder with the ``*.gz`` files. Defaults to the Debian
            package's folder (``apt-get install dataset-fashion-mnist``).

    Returns:
        list[str]: Paths of the decompressed files.
    """
    os.makedirs(dst, exist_ok=True)
    written = []
    for name in IDX_FILES:
        target = osp.join(dst, name)
        if not osp.exists(target):
            source = osp.join(src, name + '.gz')
            if not osp.exists(source):
                raise FileNotFoundError(
                    f'{source} not found: install the Debian package with '
                    '`apt-get install -y dataset-fashion-mnist` or pass '
                    '--src to a folder with the gzipped IDX files.')
            with gzip.open(source, 'rb') as fin, open(target + '.part',
                                                       'wb') as fout:
                shutil.copyfileobj(fin, fout)
            os.replace(target + '.part', target)
        written.append(target)
    return written
