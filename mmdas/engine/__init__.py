from .model_wrappers import MMDASDistributedDataParallel

__all__ = ['MMDASDistributedDataParallel']
