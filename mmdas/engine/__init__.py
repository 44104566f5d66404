from .checkpoint_coverage_hook import CheckpointCoverageHook
from .model_wrappers import MMDASDistributedDataParallel
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = [
    'CheckpointCoverageHook', 'MMDASDistributedDataParallel',
    'SafeCheckpointHook'
]
