from . import (backbones, data_preprocessors, decode_heads, heads,  # noqa: F401
               segmentors, temporal)
from .das_cell import DASCell
from .data_preprocessors import DASClsDataPreprocessor, DASSegDataPreProcessor
from .segmentors import DASEncoderDecoder

__all__ = [
    'DASCell', 'DASSegDataPreProcessor', 'DASClsDataPreprocessor',
    'DASEncoderDecoder'
]
