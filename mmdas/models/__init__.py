from . import backbones, data_preprocessors, decode_heads, heads, temporal  # noqa: F401
from .das_cell import DASCell
from .data_preprocessors import DASClsDataPreprocessor, DASSegDataPreProcessor
from .frozen_das_cell import FrozenDASCell

__all__ = [
    'DASCell', 'FrozenDASCell', 'DASSegDataPreProcessor',
    'DASClsDataPreprocessor'
]
