"""mmdas: DAS image-to-video augmentation search and GSF video backbones for
mmsegmentation and mmpretrain.

``import mmdas`` (or ``custom_imports=dict(imports=['mmdas'])`` in a config)
applies the compatibility fixes of :mod:`mmdas.compat` and registers every
component in mmengine's root registries (see :mod:`mmdas.registry`).
"""
from . import compat

# Must run before anything imports mmseg.models / mmseg.utils (mmcv-lite).
compat.apply_all()

from . import datasets, engine, models  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['__version__']
