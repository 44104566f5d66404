"""Test (and evaluate) a checkpoint with an mmseg or mmpretrain config.

Same command line as mmseg's ``tools/test.py``. The config's
``default_scope`` decides how ``--out`` and ``--show-dir`` are applied.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdas  # noqa: E402,F401  (compat fixes + registration)
from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdas.utils import check_config_types, prepare_cfg_for_launch  # noqa
from mmdas.utils import use_checkpoint_hooks  # noqa: E402
from mmdas.utils import report_lost_ranks  # noqa: E402
from mmdas.utils.launch import (MissingDataError,  # noqa: E402
                                ensure_data_folders)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a model with mmdas')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='segmentation: directory to save the predictions; '
        'classification: pickle file to dump the predictions to')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
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
        '--das-test-policy',
        metavar='FILE|OP:MAGNITUDE',
        help='segmentation: test a 2D model on DAS frames of each image '
        '(its own weights, no temporal module) and fuse the frames by '
        'inverse warping; a policy JSON file or e.g. rotate:8')
    parser.add_argument(
        '--das-test-frames',
        type=int,
        help='frames per image for --das-test-policy OP:MAGNITUDE '
        '(default 8)')
    parser.add_argument(
        '--tta', action='store_true', help='test time augmentation')
    parser.add_argument(
        '--allow-missing',
        action='append',
        default=[],
        metavar='PATTERN',
        help='model weights (fnmatch pattern, repeatable) that the checkpoint '
        'may lack; by default the checkpoint must provide every weight')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg, args, is_cls):
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise RuntimeError(
            'default_hooks.visualization is missing from the config: add '
            "`default_hooks=dict(visualization=dict(type='"
            f"{'VisualizationHook' if is_cls else 'SegVisualizationHook'}'))`"
            ' to use --show/--show-dir.')
    hook = hooks.visualization
    # draw every test sample: the hooks' default intervals (50 for mmseg,
    # 5000 for mmpretrain) would skip most or all of a small test set
    hook.interval = 1
    if is_cls:  # mmpretrain's VisualizationHook
        hook.enable = True
        hook.show = args.show
        hook.wait_time = args.wait_time
        hook.out_dir = args.show_dir
    else:  # mmseg's SegVisualizationHook
        hook.draw = True
        if args.show:
            hook.show = True
            hook.wait_time = args.wait_time
        if args.show_dir:
            cfg.visualizer.save_dir = args.show_dir


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    try:  # a missing data set: one line naming it, not a traceback
        ensure_data_folders(cfg, ('test', ), args.launcher == 'none')
    except MissingDataError as err:
        sys.exit(f'tools/test.py: {err}')
    cfg = prepare_cfg_for_launch(cfg, args.launcher)
    is_cls = cfg.get('default_scope') == 'mmpretrain'

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    use_checkpoint_hooks(cfg, test=True, allow_missing=args.allow_missing)

    if args.show or args.show_dir:
        enable_visualization(cfg, args, is_cls)

    if args.das_test_policy:
        from mmdas.utils.test_time_das import (das_test_time_model,
                                               parse_das_test_policy)
        if args.tta or is_cls:
            raise ValueError('--das-test-policy: works on mmseg models and '
                             'not together with --tta.')
        cfg.model = ConfigDict(
            das_test_time_model(
                cfg.model,
                parse_das_test_policy(args.das_test_policy,
                                      args.das_test_frames)))
    elif args.das_test_frames is not None:
        raise ValueError('--das-test-frames needs --das-test-policy.')

    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise KeyError('--tta needs `tta_model` and `tta_pipeline` in the '
                           'config (mmseg and mmpretrain base runtimes define '
                           'them).')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        # mmengine's TTA wrapper hands its data_preprocessor to the module,
        # and the Runner fills it from the config's top-level one: give it
        # the module's own, or a DAS preprocessor would be replaced
        if 'data_preprocessor' in cfg.model.module:
            cfg.model.data_preprocessor = cfg.model.module.data_preprocessor

    if args.out is not None and not is_cls:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    check_config_types(cfg)

    runner = Runner.from_cfg(cfg)
    if args.out is not None and is_cls:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    with report_lost_ranks(cfg):  # a lost rank ends the run, named
        runner.test()


if __name__ == '__main__':
    main()
