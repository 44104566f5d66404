from .das_search_hook import DASSearchHook
from .model_wrappers import MMDASDistributedDataParallel
from .perturbation_selection import PerturbationSelection, task_metric

__all__ = [
    'DASSearchHook', 'MMDASDistributedDataParallel', 'PerturbationSelection',
    'task_metric'
]
