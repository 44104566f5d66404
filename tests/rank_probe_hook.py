"""Test-only hook: each rank records what it trained on (tests/test_dist.py).

mmengine logs from rank 0 only, so the DDP test needs per-rank evidence:
which images each rank's dataloader gave it and the parameters each rank
ended with.
"""
import json
import os.path as osp

from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _param_sum(model):
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def _alphas(model):
    """A search cell's α (None without one)."""
    for name, param in model.named_parameters():
        if name.endswith('cell.alphas'):
            return param.detach().tolist()
    return None


@HOOKS.register_module()
class RankProbeHook(Hook):
    """Write ``rank<r>.json`` into the work_dir after training."""

    def before_train(self, runner):
        self.img_paths = []
        self.iters = 0
        self.start_sum = _param_sum(runner.model)
        self.start_alphas = _alphas(runner.model)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters += 1
        # classification sets held in memory have no paths: use the index
        self.img_paths += [
            s.metainfo.get('img_path', s.metainfo.get('sample_idx'))
            for s in data_batch['data_samples']
        ]

    def after_train(self, runner):
        rank, world_size = get_dist_info()
        record = dict(
            rank=rank,
            world_size=world_size,
            iters=self.iters,
            img_paths=self.img_paths,
            start_param_sum=self.start_sum,
            end_param_sum=_param_sum(runner.model),
            start_alphas=self.start_alphas,
            end_alphas=_alphas(runner.model),
            wrapper=type(runner.model).__name__)
        with open(osp.join(runner.work_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(record, f)
