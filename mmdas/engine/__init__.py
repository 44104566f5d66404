from .checkpoint_coverage_hook import CheckpointCoverageHook
from .das_search_hook import DASSearchHook
from .finite_training_hook import FiniteTrainingHook
from .model_wrappers import MMDASDistributedDataParallel
from .perturbation_selection import PerturbationSelection, task_metric
from .rng_state_hook import RNGStateHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .search_selection import SearchSelection

__all__ = [
    'CheckpointCoverageHook', 'DASSearchHook', 'FiniteTrainingHook',
    'MMDASDistributedDataParallel', 'PerturbationSelection', 'RNGStateHook',
    'SafeCheckpointHook', 'SearchSelection',
    'task_metric'
]
