from .checkpoint_coverage_hook import CheckpointCoverageHook
from .das_search_hook import DASSearchHook
from .model_wrappers import MMDASDistributedDataParallel
from .perturbation_selection import PerturbationSelection, task_metric
from .safe_checkpoint_hook import SafeCheckpointHook
from .search_selection import SearchSelection

__all__ = [
    'CheckpointCoverageHook', 'DASSearchHook', 'MMDASDistributedDataParallel',
    'PerturbationSelection', 'SafeCheckpointHook', 'SearchSelection',
    'task_metric'
]
