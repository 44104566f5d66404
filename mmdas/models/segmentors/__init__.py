from .das_encoder_decoder import DASEncoderDecoder

__all__ = ['DASEncoderDecoder']
