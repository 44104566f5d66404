from .temporal_fusion_head import TemporalFusionHead

__all__ = ['TemporalFusionHead']
