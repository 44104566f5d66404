"""Packing transforms that keep the DAS metainfo.

The stock ``PackSegInputs`` / ``PackInputs`` copy only the metainfo keys
they are given, and configs cannot import Python constants, so these thin
subclasses only change the default ``meta_keys``.
"""
from mmpretrain.datasets.transforms import PackInputs
from mmseg.datasets.transforms import PackSegInputs

from mmdas.registry import TRANSFORMS
from .das_image_to_video import DAS_CLS_META_KEYS, DAS_SEG_META_KEYS


@TRANSFORMS.register_module()
class PackDASSegInputs(PackSegInputs):
    """``PackSegInputs`` whose default ``meta_keys`` add the DAS keys
    (``das_matrices``, ``das_num_frames``, ``das_reference_frame``)."""

    def __init__(self, meta_keys=DAS_SEG_META_KEYS):
        super().__init__(meta_keys=meta_keys)


@TRANSFORMS.register_module()
class PackDASInputs(PackInputs):
    """mmpretrain ``PackInputs`` whose default ``meta_keys`` add the DAS
    keys."""

    def __init__(self, input_key='img', algorithm_keys=(),
                 meta_keys=DAS_CLS_META_KEYS):
        super().__init__(
            input_key=input_key,
            algorithm_keys=algorithm_keys,
            meta_keys=meta_keys)
