from . import backbones, data_preprocessors, decode_heads, heads, temporal  # noqa: F401
