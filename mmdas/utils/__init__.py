from .launch import check_config_types, prepare_cfg_for_launch

__all__ = ['check_config_types', 'prepare_cfg_for_launch']
