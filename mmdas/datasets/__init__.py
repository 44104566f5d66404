from . import transforms  # noqa: F401
from .embedded import (SEG_CLASSES, SEG_PALETTE, ensure_embedded_dataset,
                       load_mnist_digits, make_embedded_classification,
                       make_embedded_segmentation)

__all__ = [
    'SEG_CLASSES', 'SEG_PALETTE', 'ensure_embedded_dataset',
    'load_mnist_digits', 'make_embedded_classification',
    'make_embedded_segmentation'
]
