from .das_preprocessor import DASClsDataPreprocessor, DASSegDataPreProcessor

__all__ = ['DASSegDataPreProcessor', 'DASClsDataPreprocessor']
