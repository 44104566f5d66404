from .checkpoint_hooks import use_checkpoint_hooks
from .launch import (check_config_types, check_das_pipelines,
                     check_das_preprocessor, prepare_cfg_for_launch,
                     resolve_dist_timeout)
from .lost_ranks import report_lost_ranks

__all__ = [
    'check_config_types', 'check_das_pipelines', 'check_das_preprocessor',
    'prepare_cfg_for_launch', 'report_lost_ranks', 'resolve_dist_timeout',
    'use_checkpoint_hooks'
]
