from . import backbones, data_preprocessors, decode_heads, heads, temporal  # noqa: F401
from .das_cell import DASCell
from .data_preprocessors import DASClsDataPreprocessor, DASSegDataPreProcessor

__all__ = ['DASCell', 'DASSegDataPreProcessor', 'DASClsDataPreprocessor']
