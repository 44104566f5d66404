"""Select the DAS policy of a finished (or stopped) search checkpoint.

Runs the selection that ends a search (``DASSearchHook``): perturbation-based
selection on the α part of the training set, and argmax(α) beside it, then
writes ``policy.json``, ``policy_argmax.json`` and ``das_selection.json`` to
the work dir (by default the checkpoint's directory)::

    python tools/select_policy.py configs/das_search_deeplabv3plus_r18_embedded.py \
        work_dirs/das_search_deeplabv3plus_r18_embedded/iter_700.pth

The split into the weight part and the α part is the search's (same config,
same seed).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdas  # noqa: E402,F401  (compat fixes + registration)
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdas.engine import DASSearchHook  # noqa: E402
from mmdas.utils import check_config_types, prepare_cfg_for_launch  # noqa


def parse_args():
    parser = argparse.ArgumentParser(
        description='Select the DAS policy of a search checkpoint')
    parser.add_argument('config', help='the search config (das_search_*.py)')
    parser.add_argument('checkpoint', help='a checkpoint of that search')
    parser.add_argument(
        '--work-dir',
        help='where to write the policy and the selection record (default: '
        "the checkpoint's directory)")
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
    cfg = prepare_cfg_for_launch(cfg, args.launcher)
    check_config_types(cfg)
    cfg.work_dir = args.work_dir or osp.dirname(
        osp.abspath(args.checkpoint))
    cfg.load_from, cfg.resume = None, False

    runner = Runner.from_cfg(cfg)
    hooks = [h for h in runner.hooks if isinstance(h, DASSearchHook)]
    if not hooks:
        raise ValueError(f'{args.config} is not a search config: it has no '
                         "DASSearchHook in custom_hooks (see "
                         'configs/_base_/das_search.py).')
    hook = hooks[0]
    # tuning between edge decisions trains with the config's optimiser
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    hook.setup(runner)
    runner.load_checkpoint(args.checkpoint)
    record = hook.select(runner)
    runner.logger.info(
        f"perturbation: {record['perturbation']['genotype']}; argmax: "
        f"{record['argmax']['genotype']}; policy: "
        f"{osp.join(cfg.work_dir, record['policy_file'])}")


if __name__ == '__main__':
    main()
