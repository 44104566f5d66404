from .checkpoint_hooks import use_checkpoint_hooks
from .launch import check_config_types, prepare_cfg_for_launch

__all__ = [
    'check_config_types', 'prepare_cfg_for_launch', 'use_checkpoint_hooks'
]
