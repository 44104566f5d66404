from . import (backbones, data_preprocessors, decode_heads, heads,  # noqa: F401
               segmentors, temporal)
from .das_cell import DASCell
from .data_preprocessors import DASClsDataPreprocessor, DASSegDataPreProcessor
from .frozen_das_cell import FrozenDASCell
from .segmentors import DASEncoderDecoder

__all__ = [
    'DASCell', 'FrozenDASCell', 'DASSegDataPreProcessor',
    'DASClsDataPreprocessor', 'DASEncoderDecoder'
]
