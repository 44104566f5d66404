from .temporal_avg_cls_head import TemporalAvgClsHead

__all__ = ['TemporalAvgClsHead']
