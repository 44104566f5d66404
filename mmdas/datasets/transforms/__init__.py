from .das_image_to_video import (DAS_CLS_META_KEYS, DAS_SEG_META_KEYS,
                                 DASImageToVideo)
from .formatting import PackDASInputs, PackDASSegInputs
from .loading import LoadAnnotationsChecked, LoadImageFromFileChecked
from .padding import DASPad

__all__ = [
    'DASImageToVideo', 'DASPad', 'PackDASSegInputs', 'PackDASInputs',
    'DAS_SEG_META_KEYS', 'DAS_CLS_META_KEYS', 'LoadImageFromFileChecked',
    'LoadAnnotationsChecked'
]
