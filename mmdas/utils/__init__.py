from .launch import (check_config_types, check_das_preprocessor,
                     prepare_cfg_for_launch)

__all__ = [
    'check_config_types', 'check_das_preprocessor', 'prepare_cfg_for_launch'
]
