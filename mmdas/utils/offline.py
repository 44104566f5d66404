"""One clear message when pretrained weights cannot be downloaded.

The shipped segmentation configs keep mmseg's ImageNet weights
(``model.pretrained='open-mmlab://resnet50_v1c'``), downloaded at the first
run. Offline (and in the tests) one override turns them off.
"""
from typing import NoReturn
from urllib.error import URLError

#: the documented override that starts a shipped config from scratch
NO_PRETRAINED_OVERRIDE = '--cfg-options model.pretrained=None'

#: what a failed download raises (``HTTPError`` is a ``URLError``)
DOWNLOAD_ERRORS = (URLError, ConnectionError, TimeoutError)


def raise_download_failed(checkpoint, err: BaseException) -> NoReturn:
    """Re-raise a failed weight download with the offline override.

    Args:
        checkpoint: What was being downloaded (a URL, ``open-mmlab://...``).
        err (BaseException): The download error.

    Raises:
        RuntimeError: Always, chained to ``err``.
    """
    raise RuntimeError(
        f'Could not download the pretrained weights {checkpoint!r} ({err}). '
        'Without network access, start from scratch with '
        f'`{NO_PRETRAINED_OVERRIDE}` (tools/train.py; in Python: '
        "cfg.model.pretrained = None), or set model.pretrained to a local "
        '.pth file.') from err
