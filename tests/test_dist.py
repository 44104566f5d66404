"""``bash tools/dist_train.sh CONFIG 2`` on the CPU: two gloo ranks train."""
import glob
import json
import os.path as osp
import socket

from conftest import REPO, SEG_CONFIG, run_tool, seg_options, train_iters


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_dist_train_two_cpu_ranks(tiny_seg_root, tmp_path, monkeypatch):
    # a child config adds the per-rank probe hook (tests/rank_probe_hook.py)
    config = tmp_path / 'probe_cfg.py'
    config.write_text(
        f'_base_ = [{SEG_CONFIG!r}]\n'
        "custom_imports = dict(imports=['mmdas', 'rank_probe_hook'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='RankProbeHook')]\n")
    work_dir = str(tmp_path / 'work')
    monkeypatch.setenv('PORT', str(free_port()))
    # 8 train images, 2 per rank and iteration: 2 iterations = 1 pass
    out = run_tool(
        ['bash', osp.join('tools', 'dist_train.sh'),
         str(config), '2', '--work-dir', work_dir, '--cfg-options',
         *seg_options(tiny_seg_root, max_iters=2, batch_size=2)],
        extra_pythonpath=[osp.join(REPO, 'tests')],
        timeout=300).stdout

    # rank 0's log: a distributed run of world size 2 that finished
    assert 'Distributed training: True' in out
    assert 'GPU number: 2' in out
    assert train_iters(out) == [(1, 2), (2, 2)]
    assert 'Iter(val) [2/2]' in out  # 4 val images split over 2 ranks

    records = {}
    for rank in (0, 1):
        with open(osp.join(work_dir, f'rank{rank}.json')) as f:
            records[rank] = json.load(f)
    for rank, record in records.items():
        assert record['rank'] == rank and record['world_size'] == 2
        assert record['iters'] == 2
        assert record['wrapper'] == 'MMDASDistributedDataParallel'
        assert record['end_param_sum'] != record['start_param_sum']
    # each rank got half of the data, the halves disjoint
    seen = [set(records[r]['img_paths']) for r in (0, 1)]
    assert len(records[0]['img_paths']) == len(records[1]['img_paths']) == 4
    assert not seen[0] & seen[1]
    all_train = glob.glob(osp.join(tiny_seg_root, 'img_dir', 'train', '*'))
    assert seen[0] | seen[1] == set(all_train)
    # gradients were all-reduced: both ranks end with the same weights
    assert abs(records[0]['end_param_sum'] -
               records[1]['end_param_sum']) < 1e-6 * max(
                   1.0, abs(records[0]['end_param_sum']))

    # rank 0 alone saved, once
    assert sorted(osp.basename(p) for p in glob.glob(
        osp.join(work_dir, '*.pth'))) == ['iter_2.pth']
