"""Train a segmentor (mmseg config) or a classifier (mmpretrain config).

The config's ``default_scope`` decides which codebase builds it. Same
command line as mmseg's ``tools/train.py``; ``--resume`` also takes a path.
"""
import argparse
import logging
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdas  # noqa: E402,F401  (compat fixes + registration)
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdas.utils import check_config_types, prepare_cfg_for_launch  # noqa
from mmdas.utils import use_checkpoint_hooks  # noqa: E402
from mmdas.utils.step_size import check_amp_device, das_step_summary  # noqa
from mmdas.utils import report_lost_ranks  # noqa: E402
from mmdas.utils.launch import (MissingDataError,  # noqa: E402
                                ensure_data_folders)
from mmdas.utils.offline import (DOWNLOAD_ERRORS,  # noqa: E402
                                 raise_download_failed)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model with mmdas')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        help='resume from the latest checkpoint in the work_dir, or from the '
        'given checkpoint path')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (needs a GPU)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--check-data',
        action='store_true',
        help='first read every file of the train/val/test sets and stop if '
        'any is wrong (tools/check_dataset.py)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # --amp first: a CPU-only machine is refused before anything is read
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type is '
                f'`OptimWrapper` but got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    check_amp_device(cfg)
    try:  # a missing data set: one line naming it, not a traceback
        ensure_data_folders(cfg, ('train', 'val'), args.launcher == 'none')
    except MissingDataError as err:
        sys.exit(f'tools/train.py: {err}')
    if args.check_data:
        from mmdas.datasets.checks import check_dataset_or_exit
        check_dataset_or_exit(cfg)
    cfg = prepare_cfg_for_launch(cfg, args.launcher)
    use_checkpoint_hooks(cfg)  # crash-safe saving, resume fallback
    check_config_types(cfg)

    # work_dir priority: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    step_summary = das_step_summary(cfg)  # what a DAS step asks of a GPU
    if step_summary:
        print_log(step_summary, logger='current')
    try:
        with report_lost_ranks(cfg):  # a lost rank ends the run, named
            runner.train()
    except DOWNLOAD_ERRORS as err:  # the stock 2D backbones' pretrained
        raise_download_failed(cfg.model.get('pretrained') or 'a URL', err)


if __name__ == '__main__':
    main()
