"""Loading checkpoints without running code from them.

mmengine 0.10.7 loads local checkpoints with ``torch.load`` and no
``weights_only`` (torch>=2.6 then refuses mmengine's own checkpoints), and
URLs with ``torch.hub.load_state_dict_from_url``, whose default is
``weights_only=False`` (any pickle from the URL runs). mmdas re-registers
mmengine's loaders (:class:`mmengine.runner.CheckpointLoader` schemes) so that
every checkpoint goes through ``torch.load(weights_only=True)`` with a short
allow-list of what OpenMMLab checkpoints legitimately hold:

* mmengine's :class:`~mmengine.logging.HistoryBuffer` (the message hub);
* numpy arrays, scalars and dtypes (message hub and ``meta``), under both
  numpy 2's (``numpy._core``) and numpy 1's (``numpy.core``) names;
* ``builtins.getattr``, which pickle protocol 2 uses for methods of a class
  (a ``HistoryBuffer`` pickles its statistics methods as
  ``getattr(HistoryBuffer, 'mean')``), replaced by :func:`allowlisted_getattr`,
  which answers only the ``(object, attribute)`` pairs of
  :data:`SAFE_ATTRIBUTES` and refuses everything else.

Anything else (``os.system``, arbitrary classes, ``getattr`` on anything not
listed) is refused with :class:`UntrustedCheckpointError` before it runs. A
trusted legacy file can be loaded with full pickle by setting the environment
variable ``MMDAS_TRUSTED_CHECKPOINTS=1`` (see ``docs/compat.md``).
"""
import logging
import os
import os.path as osp
import pickle
import re
from typing import Callable, Dict, List, Tuple

TRUST_ENV_VAR = 'MMDAS_TRUSTED_CHECKPOINTS'

# What torch's weights-only unpickler says when it refuses an object (as
# opposed to data it cannot parse: a truncated or damaged file)
REFUSAL = re.compile(r'GLOBAL|unrecognized function|attribute lookup|'
                     r'Can only (create|build|append|SETITEM)|allowlist')

# Attributes that a checkpoint's pickle may look up with ``getattr``, per
# object. Filled lazily (the classes import mmengine / numpy).
SAFE_ATTRIBUTES: Dict[object, Tuple[str, ...]] = {}


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint's pickle asks for something outside the allow-list."""


def _safe_attributes() -> Dict[object, Tuple[str, ...]]:
    if not SAFE_ATTRIBUTES:
        from mmengine.logging import HistoryBuffer

        # the statistics HistoryBuffer registers for itself (its
        # ``_statistics_methods``), pickled by reference
        SAFE_ATTRIBUTES[HistoryBuffer] = ('min', 'max', 'current', 'mean')
    return SAFE_ATTRIBUTES


def allowlisted_getattr(obj, name: str):
    """``getattr`` as a checkpoint may use it: only listed attributes.

    Args:
        obj: The object, which the unpickler has already taken from the
            allow-list.
        name (str): The attribute.

    Returns:
        The attribute, if ``(obj, name)`` is in :data:`SAFE_ATTRIBUTES`.

    Raises:
        UntrustedCheckpointError: For every other pair.
    """
    for owner, names in _safe_attributes().items():
        if obj is owner and name in names:
            return getattr(obj, name)
    raise UntrustedCheckpointError(
        f'getattr({obj!r}, {name!r}) is not an allowed attribute lookup')


def checkpoint_safe_globals() -> List[Tuple[Callable, str]]:
    """The ``(object, pickled name)`` pairs a checkpoint may reference.

    In the form :func:`torch.serialization.safe_globals` takes, so that the
    pickled name maps to exactly this object (``builtins.getattr`` maps to
    :func:`allowlisted_getattr`, not to Python's ``getattr``).
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer

    multiarray = getattr(np, '_core', None) or np.core
    multiarray = multiarray.multiarray
    pairs = [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (np.dtype, 'numpy.dtype'),
        (np.ndarray, 'numpy.ndarray'),
        (allowlisted_getattr, 'builtins.getattr'),
    ]
    # numpy 2 writes numpy._core.*, checkpoints from numpy 1 numpy.core.*
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        pairs.append((multiarray.scalar, f'{module}.scalar'))
        pairs.append((multiarray._reconstruct, f'{module}._reconstruct'))
    # a dtype is rebuilt as np.dtype(...) and then BUILT: the unpickler checks
    # the instance's class, one per kind of dtype (numpy.dtypes.Float64DType)
    for code in np.typecodes['All']:
        cls = type(np.dtype(code))
        pairs.append((cls, f'{cls.__module__}.{cls.__qualname__}'))
    return sorted(set(pairs), key=lambda pair: pair[1])


def checkpoints_trusted() -> bool:
    """Whether the user opted in to full-pickle loading
    (``MMDAS_TRUSTED_CHECKPOINTS=1``)."""
    return os.environ.get(TRUST_ENV_VAR, '').strip().lower() in ('1', 'true',
                                                                'yes')


def _refusal_reason(err: Exception) -> str:
    """The unpickler's own sentence out of torch's long message."""
    text = str(err).split('WeightsUnpickler error:')[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # torch prefixes its general advice and appends a link to its docs
    for line in reversed(lines):
        if not line.startswith(('Weights only load failed', 'Check the')):
            return line.rstrip('.')
    return type(err).__name__


def safe_load(source: str, load: Callable[[bool], object]):
    """Call ``load(weights_only)`` with the checkpoint allow-list.

    Args:
        source (str): The file or URL, for the error message.
        load (Callable[[bool], object]): Loads the checkpoint with
            ``torch.load(..., weights_only=<its argument>)``.

    Returns:
        The loaded checkpoint.

    Raises:
        UntrustedCheckpointError: The checkpoint needs something that is not
            allow-listed; nothing from it has run.
    """
    import torch
    if checkpoints_trusted():
        from mmengine.logging import print_log
        print_log(
            f'{TRUST_ENV_VAR} is set: loading {source} with full pickle, '
            'which runs any code the file contains.',
            logger='current', level=logging.WARNING)
        return load(False)
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return load(True)
    except pickle.UnpicklingError as err:
        if 'Weights only load failed' not in str(err) and not isinstance(
                err, UntrustedCheckpointError):
            raise
        reason = _refusal_reason(err)
        if not REFUSAL.search(reason):  # damaged data, not a refused object
            raise pickle.UnpicklingError(
                f'{source} is not a readable checkpoint: {reason}') from None
        raise UntrustedCheckpointError(
            f'Refused to load the checkpoint {source}: '
            f'{reason}. mmdas loads checkpoints with '
            'torch.load(weights_only=True) and allows only what an '
            "OpenMMLab checkpoint holds (tensors, mmengine's HistoryBuffer, "
            'numpy arrays and scalars), so that loading a file never runs '
            'code from it. If you trust this file and where it came from, '
            f'set the environment variable {TRUST_ENV_VAR}=1 to load it with '
            'full pickle (e.g. '
            f'`{TRUST_ENV_VAR}=1 python tools/test.py CONFIG CHECKPOINT`); '
            'better, load it once that way and re-save only its state_dict.'
        ) from None


def load_checkpoint_file(filename: str, map_location=None):
    """mmengine's local-file checkpoint loader, without running pickled code.

    Args:
        filename (str): Path of the checkpoint (``~`` is expanded).
        map_location: Same as :func:`torch.load`.

    Returns:
        dict: The checkpoint.
    """
    import torch
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return safe_load(
            filename, lambda weights_only: torch.load(
                filename, map_location=map_location,
                weights_only=weights_only))
    except (RuntimeError, EOFError) as err:
        # torch's zip reader names no file ("failed finding central
        # directory")
        reason = str(err).strip().splitlines()[0] if str(err).strip() \
            else type(err).__name__
        raise RuntimeError(
            f'{filename} is not a readable checkpoint (truncated or '
            f'damaged, {osp.getsize(filename)} bytes): {reason}') from err


def load_checkpoint_url(filename: str,
                        map_location=None,
                        model_dir=None,
                        progress=os.isatty(0)):
    """mmengine's http(s) checkpoint loader, without running pickled code.

    Downloads into torch hub's cache as mmengine does (rank 0 first, the other
    ranks after a barrier), then loads like :func:`load_checkpoint_file`.

    Args:
        filename (str): The URL.
        map_location: Same as :func:`torch.load`.
        model_dir (str, optional): Cache directory; torch hub's by default.
        progress (bool): Show a download progress bar.

    Returns:
        dict: The checkpoint.
    """
    import torch
    from mmengine.dist import get_dist_info
    from torch.hub import load_state_dict_from_url

    def load(weights_only):
        return load_state_dict_from_url(
            filename, model_dir=model_dir, map_location=map_location,
            progress=progress, weights_only=weights_only)

    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = safe_load(filename, load)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = safe_load(filename, load)
    return checkpoint


def load_model_zoo_checkpoint(filename: str, map_location=None):
    """``torchvision://``, ``open-mmlab://`` and ``mmcls://`` names.

    Resolved with mmengine's own URL tables, then loaded like
    :func:`load_checkpoint_url` (mmengine's versions download through its
    unguarded http loader).
    """
    from mmengine.runner import checkpoint as mm_ckpt
    prefix, name = filename.split('://', 1)
    if prefix in ('torchvision', 'modelzoo'):
        url = mm_ckpt.get_torchvision_models()[name]
    elif prefix == 'mmcls':
        checkpoint = load_checkpoint_url(
            mm_ckpt.get_mmcls_models()[name], map_location=map_location)
        return mm_ckpt._process_mmcls_checkpoint(checkpoint)
    else:  # open-mmlab:// and openmmlab://
        name = mm_ckpt.get_deprecated_model_names().get(name, name)
        url = mm_ckpt.get_external_models()[name]
        if not url.startswith(('http://', 'https://')):
            return load_checkpoint_file(
                osp.join(mm_ckpt._get_mmengine_home(), url), map_location)
    return load_checkpoint_url(url, map_location=map_location)


def install_checkpoint_loaders() -> None:
    """Register the loaders above for mmengine's local, http(s) and model-zoo
    schemes (``CheckpointLoader.register_scheme(..., force=True)``)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_checkpoint_file, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=load_checkpoint_url,
        force=True)
    CheckpointLoader.register_scheme(
        prefixes=('modelzoo://', 'torchvision://', 'open-mmlab://',
                  'openmmlab://', 'mmcls://'),
        loader=load_model_zoo_checkpoint, force=True)
