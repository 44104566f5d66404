from . import backbones, data_preprocessors, decode_heads, heads  # noqa: F401
