"""The DAS search: DASSearchHook, perturbation-based selection, the policy
file it writes and the training twin that takes it."""
import glob
import json
import os.path as osp
import re
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO, cls_options, run_tool, seg_options, train_iters
from mmdas.engine import DASSearchHook, PerturbationSelection
from mmdas.models import DASCell, FrozenDASCell
from mmdas.models.data_preprocessors import DASSegDataPreProcessor
from mmdas.policy import DASPolicy

SEG_SEARCH = osp.join(REPO, 'configs',
                      'das_search_deeplabv3plus_r18_embedded.py')
SEG_TWIN = osp.join(REPO, 'configs', 'das_deeplabv3plus_r18_embedded.py')
CLS_SEARCH = osp.join(REPO, 'configs',
                      'das_search_resnet18_embedded_digits_cls.py')
CLS_TWIN = osp.join(REPO, 'configs', 'das_resnet18_embedded_digits_cls.py')
TRAIN = [sys.executable, osp.join('tools', 'train.py')]
SELECT = [sys.executable, osp.join('tools', 'select_policy.py')]


# ---- selection on a case with known drops ---------------------------------
def _known_drops(cell, penalty):
    """A metric that loses ``penalty[e][o]`` when op o of edge e is absent."""

    def evaluate():
        weights = cell.edge_weights()
        return 100.0 - float((penalty * (weights == 0)).sum())

    return evaluate


@pytest.mark.parametrize('num_nodes', [1, 2])
def test_selection_keeps_the_op_whose_masking_hurts_most(num_nodes):
    torch.manual_seed(0)
    cell = DASCell(num_frames=3, num_nodes=num_nodes)
    num_edges, num_ops = cell.alphas.shape
    penalty = torch.rand(num_edges, num_ops) * 10
    # argmax(α) disagrees with the drops on every edge
    with torch.no_grad():
        cell.alphas.copy_(-penalty)
    alphas = cell.alphas.detach().clone()
    tuned, lines = [], []
    result = PerturbationSelection(
        cell, _known_drops(cell, penalty), tune=lambda: tuned.append(
            cell.edge_weights().clone()), seed=3, log=lines.append).run()

    best = [cell.ops[i] for i in penalty.argmax(-1).tolist()]
    assert result['genotype'] == best
    assert result['genotype'] != cell.genotype()  # argmax(α) differs
    assert sorted(s['edge'] for s in result['steps']) == list(
        range(num_edges))
    for step in result['steps']:
        e = step['edge']
        assert step['kept'] == best[e]
        for o, op in enumerate(cell.ops):
            assert step['masked'][op]['drop'] == pytest.approx(
                float(penalty[e, o]), abs=1e-4)
    # tuned after every decision but the last, with decided edges one-hot
    assert len(tuned) == num_edges - 1
    for n, weights in enumerate(tuned):
        for step in result['steps'][:n + 1]:
            row = weights[step['edge']]
            assert row.max() == 1 and row.sum() == 1
    # the cell is back on its α
    assert cell._fixed_weights is None
    assert torch.equal(cell.alphas, alphas)
    # a line per evaluation, each saying how many are left
    total = num_edges * (num_ops + 1)
    left = [int(n) for n in re.findall(r'(\d+) left', '\n'.join(lines))]
    assert left == list(range(total - 1, -1, -1))
    first = result['steps'][0]
    op = cell.ops[1]
    assert any(
        re.match(rf"edge {first['edge']} \(1 of {num_edges}\): {op} "
                 rf"masked: metric [0-9.]+, drop "
                 rf"\+{first['masked'][op]['drop']:.4f} \[3 evaluations "
                 rf'done, {total - 3} left, about \d+ min \d+ s\]', line)
        for line in lines), lines[:3]


def test_frozen_cell_file_loads_in_the_preprocessor(tmp_path):
    data = dict(type='FrozenDASCell', ops=['identity', 'rotate', 'scale'],
                magnitudes=dict(rotate=4.0), num_frames=3, num_nodes=2,
                genotype=['rotate', 'identity', 'scale', 'identity',
                          'rotate'])
    path = tmp_path / 'policy.json'
    path.write_text(json.dumps(data))
    pre = DASSegDataPreProcessor(policy=str(path), mean=[0, 0, 0],
                                 std=[1, 1, 1])
    assert isinstance(pre.cell, FrozenDASCell) and pre.policy is None
    weights = pre.cell.edge_weights()
    assert weights.tolist()[0] == [0, 1, 0] and weights.sum() == 5
    assert not pre.cell.alphas.requires_grad
    with pytest.raises(ValueError, match='nothing to learn'):
        DASSearchHook.find_cell(pre)
    bad = dict(data, genotype=['rotate'])
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match='one op per edge'):
        DASSegDataPreProcessor(policy=str(path))


@pytest.mark.parametrize('settings, match', [
    (dict(train_portion=1.0), 'train_portion: 1.0'),
    (dict(train_portion=0), 'train_portion: 0'),
    (dict(train_portoin=0.5), r"unknown keys \['train_portoin'\]"),
    (dict(selection=dict(criterion='loss')), 'selection.criterion'),
    (dict(arch_optimizer='adam'), 'arch_optimizer'),
    (dict(selection=dict(eval_batches=0)),
     r"selection.eval_batches: 0 must be an integer >= 1, None .* 'auto'"),
    (dict(selection=dict(eval_batches='all')), 'selection.eval_batches'),
    (dict(selection=dict(tune_lr_mult=0)), 'selection.tune_lr_mult: 0'),
])
def test_bad_settings_fail_when_the_hook_is_built(settings, match):
    with pytest.raises(ValueError, match=match):
        DASSearchHook(**settings)


# ---- the hook in a runner ---------------------------------------------------
def _runner(tmp_path, root, config=SEG_SEARCH, **changes):
    cfg = Config.fromfile(config)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = root
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline[2].scale = pipeline[3].crop_size = (32, 32)
    cfg.train_dataloader.batch_size = 2
    cfg.model.data_preprocessor.size = (32, 32)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = f'search_{tmp_path.name}'
    cfg.merge_from_dict(changes)
    runner = Runner.from_cfg(cfg)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    hook = [h for h in runner.hooks if isinstance(h, DASSearchHook)][0]
    return runner, hook


def _weights(model):
    return {
        name: p.detach().clone()
        for name, p in model.named_parameters() if 'cell.alphas' not in name
    }


def test_alpha_and_weight_steps_are_separate(tmp_path, tiny_seg_root):
    runner, hook = _runner(tmp_path, tiny_seg_root)
    hook.setup(runner)
    model, alphas = runner.model, hook.cell.alphas
    # α is in no param group of the weight optimiser (no momentum, no decay)
    held = [p for g in runner.optim_wrapper.optimizer.param_groups
            for p in g['params']]
    assert all(p is not alphas for p in held)
    assert len(held) == len(_weights(model))
    # the parts: disjoint, covering the set, half each
    assert len(runner.train_dataloader.dataset) == 4
    assert len(hook.arch_loader.dataset) == 4
    assert not set(hook.split['weights']) & set(hook.split['arch'])

    # an α step moves α only
    before, alpha0 = _weights(model), alphas.detach().clone()
    hook.arch_step(runner)
    assert not torch.equal(alphas, alpha0)
    for name, value in _weights(model).items():
        assert torch.equal(value, before[name]), name
        assert dict(model.named_parameters())[name].grad is None, name

    # a weight step moves the weights only, though α is in its forward pass
    alpha1 = alphas.detach().clone()
    batch = next(iter(runner.train_dataloader))
    model.train_step(batch, optim_wrapper=runner.optim_wrapper)
    assert alphas.grad is not None and alphas.grad.abs().sum() > 0
    assert torch.equal(alphas, alpha1)
    changed = [n for n, v in _weights(model).items()
               if not torch.equal(v, before[n])]
    assert len(changed) > 10


def test_split_is_deterministic_by_seed(tmp_path, tiny_seg_root):
    runner, hook = _runner(tmp_path, tiny_seg_root,
                           **{'das_search.seed': 5})
    splits = []
    for seed in (5, 5, 6):
        runner.cfg.das_search.seed = seed
        hook.setup(runner)
        splits.append(hook.split)
    assert splits[0] == splits[1] and splits[0] != splits[2]
    # set up again, the loop still trains on a part of the full set
    assert len(runner.train_dataloader.dataset) == 4


@pytest.mark.parametrize('changes, match', [
    ({'model.decode_head.fusion': 'inverse_warp'},
     r"model.decode_head.fusion='inverse_warp'.*allow_inverse_warp"),
    ({'train_dataloader.batch_size': 5},
     r'8 samples.*gives 4 to the weights and 4 to α.*5 x 1'),
    ({'das_search.train_portion': 1.5}, r'das_search.train_portion: 1.5'),
    ({'model.data_preprocessor.cell.ops': ['rotate']}, 'nothing to learn'),
    ({'model.data_preprocessor.cell': None,
      'model.data_preprocessor.policy': dict(_delete_=True, transforms=[])},
     'no DASCell to search'),
])
def test_bad_search_setups_fail_before_training(tmp_path, tiny_seg_root,
                                                changes, match):
    runner, hook = _runner(tmp_path, tiny_seg_root, **changes)
    with pytest.raises(ValueError, match=match):
        hook.setup(runner)



@pytest.mark.parametrize('changes, match', [
    (dict(train_portion=1.5), r'das_search.train_portion: 1.5'),
    (dict(selection=dict(criterion='miou')),
     r'das_search.selection.criterion'),
    (dict(arch_lr=1e-3), r"das_search: unknown keys \['arch_lr'\]"),
])
def test_bad_search_section_fails_at_the_config_check(changes, match):
    """tools/train.py's config check refuses a bad das_search section
    before any dataset or model is built (the hook reads it later)."""
    from mmdas.utils import check_config_types
    cfg = Config.fromfile(CLS_SEARCH)
    cfg.merge_from_dict({f'das_search.{k}': v for k, v in changes.items()})
    with pytest.raises(ValueError, match=match):
        check_config_types(cfg)
    check_config_types(Config.fromfile(CLS_SEARCH))  # the shipped one passes

def test_inverse_warp_is_allowed_on_request(tmp_path, tiny_seg_root):
    runner, hook = _runner(
        tmp_path, tiny_seg_root, **{
            'model.decode_head.fusion': 'inverse_warp',
            'das_search.allow_inverse_warp': True
        })
    hook.setup(runner)
    model, head = runner.model, runner.model.decode_head
    assert head.fusion == 'inverse_warp'
    with torch.no_grad():  # rotate dominates
        hook.cell.alphas[0, hook.cell.ops.index('rotate')] = 3.0
    # the search trains with it: an α step moves α
    alpha0 = hook.cell.alphas.detach().clone()
    assert 0 < hook.arch_step(runner) < 100
    assert not torch.equal(hook.cell.alphas, alpha0)
    # and the head warps back with the dominant op's maps: not the mean
    with torch.no_grad(), torch.random.fork_rng():
        data = model.data_preprocessor(next(iter(hook.arch_loader)), True)
        logits = head.forward(model.extract_feat(data['inputs']))
        warped = head.fuse(logits, data['data_samples'])
        head.fusion = 'mean'
        mean = head.fuse(logits, data['data_samples'])
    assert warped.shape == mean.shape == (2, 11) + logits.shape[-2:]
    assert (warped - mean).abs().max() > 1e-3


# ---- the selection's data, metric and tuning --------------------------------
def _fingerprints(model, monkeypatch):
    """Record the raw inputs of every batch the model's preprocessor sees."""
    seen = []
    pre = model.data_preprocessor
    forward = pre.forward

    def recording(data, training=False):
        seen.append(torch.stack([x.clone() for x in data['inputs']]))
        return forward(data, training)

    monkeypatch.setattr(pre, 'forward', recording)
    return seen


def test_every_masked_op_sees_the_same_batches_with_persistent_workers(
        tmp_path, tiny_seg_root, monkeypatch):
    """Persistent workers keep their random state from one pass to the
    next: evaluations must not inherit them from the training loader."""
    runner, hook = _runner(
        tmp_path, tiny_seg_root, **{
            'train_dataloader.num_workers': 2,
            'train_dataloader.persistent_workers': True,
            'das_search.selection.eval_batches': 1,
        })
    hook.setup(runner)
    assert hook.arch_loader.persistent_workers  # the search's stream is
    seen = _fingerprints(runner.model, monkeypatch)
    hook.select(runner)
    # one batch per evaluation: nothing masked, then each of the 5 ops
    assert len(seen) == 6
    for batch in seen[1:]:
        assert torch.equal(batch, seen[0])
    # the pipeline does draw (PhotoMetricDistortion): two passes of a
    # persistent loader differ, so the equality above is the fix's
    loader = hook._build_loader(
        runner, hook.split['arch'], 0,
        dict(runner.cfg.train_dataloader,
             sampler=dict(type='DefaultSampler', shuffle=False)))
    assert loader.persistent_workers
    passes = [[b['inputs'][0] for b in loader][0] for _ in range(2)]
    assert not torch.equal(*passes)


class _PaddingSegmentor(torch.nn.Module):
    """An mmseg-like segmentor whose logits are its input's first three
    channels: its predictions are known. Resized as mmseg's decode heads
    resize (``BaseDecodeHead.predict_by_feat``)."""

    def __init__(self, size):
        super().__init__()
        from types import SimpleNamespace

        from mmseg.models.data_preprocessor import SegDataPreProcessor
        self.data_preprocessor = SegDataPreProcessor(size=size)
        self.decode_head = SimpleNamespace(
            num_classes=3, ignore_index=255, align_corners=False)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def encode_decode(self, inputs, metas):
        from mmseg.models.decode_heads.decode_head import BaseDecodeHead
        return BaseDecodeHead.predict_by_feat(self.decode_head,
                                              inputs[:, :3] * self.scale,
                                              metas)


def _seg_batch(sizes, seed=0):
    """Images of ``sizes`` (uint8) with labels, a tenth of them ignored."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(torch.randint(0, 256, (3, h, w), generator=gen,
                                    dtype=torch.uint8))
        label = torch.randint(0, 3, (1, h, w), generator=gen)
        label[torch.rand(1, h, w, generator=gen) < 0.1] = 255
        sample = SegDataSample(metainfo=dict(img_shape=(h, w),
                                             ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('sizes', [[(8, 8), (6, 5)], [(6, 5), (8, 8)]])
def test_task_metric_equals_mmseg_iou_metric_on_padded_batches(sizes):
    from mmseg.evaluation import IoUMetric

    from mmdas.engine import task_metric
    model = _PaddingSegmentor(size=(8, 8))
    batches = [_seg_batch(sizes, seed=0), _seg_batch(sizes[::-1], seed=1)]
    # mmseg's IoUMetric on the same predictions, each image unpadded
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    for batch in batches:
        metric.process(batch, [
            dict(pred_sem_seg=dict(data=x[:3].float().argmax(0)[None]),
                 gt_sem_seg=dict(data=s.gt_sem_seg.data))
            for x, s in zip(batch['inputs'], batch['data_samples'])
        ])
    expected = metric.compute_metrics(metric.results)
    assert 20 < expected['aAcc'] < 50  # random labels: about a third right
    import copy
    assert task_metric(model, copy.deepcopy(batches),
                       'accuracy') == pytest.approx(expected['aAcc'],
                                                    abs=0.005)
    assert task_metric(model, copy.deepcopy(batches),
                       'mIoU') == pytest.approx(expected['mIoU'], abs=0.005)


def test_task_metric_refuses_padding_it_would_score():
    from mmdas.engine import task_metric
    model = _PaddingSegmentor(size=(8, 8))
    model.data_preprocessor.seg_pad_val = 0
    with pytest.raises(ValueError, match=r'seg_pad_val=0.*ignore_index=255'
                       r'.*model.data_preprocessor.seg_pad_val=255'):
        task_metric(model, [_seg_batch([(8, 8), (6, 5)])])


def test_selection_metric_on_a_padded_batch_of_the_search_model(
        tmp_path, tiny_seg_root):
    """The real search model on 32x32 and 24x20 images padded to 32x32, in
    both orders: with every pixel predicted as class 3, pixel accuracy is
    the share of class 3 among the labelled pixels of both images (padding
    excluded)."""
    from mmdas.engine import task_metric
    runner, hook = _runner(tmp_path, tiny_seg_root)
    model = runner.model
    with torch.no_grad():
        conv = model.decode_head.conv_seg
        conv.weight.zero_()
        conv.bias.copy_(torch.arange(11) == 3)
    for order in (1, -1):
        batch = _seg_batch([(32, 32), (24, 20)][::order], seed=2)
        for sample in batch['data_samples']:
            sample.gt_sem_seg.data[:, :4] = 3  # the class is present
        labels = torch.cat([s.gt_sem_seg.data.flatten()
                            for s in batch['data_samples']])
        labels = labels[labels != 255]
        expected = 100.0 * float((labels == 3).sum()) / labels.numel()
        assert task_metric(model, [batch]) == pytest.approx(expected,
                                                            abs=1e-4)
        present = len(labels.unique())
        assert task_metric(model, [batch], 'mIoU') == pytest.approx(
            expected / present, abs=1e-4)


def test_tuning_runs_at_the_initial_learning_rate(tmp_path, tiny_seg_root,
                                                  monkeypatch):
    """After a poly schedule the lr is near eta_min; tuning uses each
    group's initial lr x tune_lr_mult, and restores the decayed one."""
    runner, hook = _runner(
        tmp_path, tiny_seg_root, **{
            'model.data_preprocessor.cell.num_nodes': 2,
            'das_search.selection': dict(tune_iters=2, tune_lr_mult=0.5),
        })
    hook.setup(runner)
    base_lr = runner.cfg.optim_wrapper.optimizer.lr
    schedulers = runner.build_param_scheduler(runner.cfg.param_scheduler)
    for _ in range(runner.cfg.train_cfg.max_iters - 1):
        for scheduler in schedulers:
            scheduler.step()
    wrapper = runner.optim_wrapper
    groups = wrapper.optimizer.param_groups
    decayed = [g['lr'] for g in groups]
    assert max(decayed) < base_lr / 100
    seen = []
    step = wrapper.step

    def recording(**kwargs):
        seen.append([g['lr'] for g in groups])
        return step(**kwargs)

    monkeypatch.setattr(wrapper, 'step', recording)
    before = _weights(runner.model)
    alphas = hook.cell.alphas.detach().clone()
    hook.selection(runner).tune()
    assert seen == [[base_lr * 0.5] * len(groups)] * 2
    assert [g['lr'] for g in groups] == decayed
    assert any(not torch.equal(v, before[n])
               for n, v in _weights(runner.model).items())
    assert torch.equal(hook.cell.alphas, alphas)  # α is not tuned
    assert hook.cell.alphas.grad is None


def test_auto_eval_batches_keeps_the_selection_within_its_budget():
    from mmdas.engine.search_selection import (ITER_COST_IN_EVAL_BATCHES,
                                               SELECTION_BUDGET,
                                               auto_eval_batches)
    # the demo search: 1100 iterations, one edge of 5 ops, 250 batches
    batches = auto_eval_batches(1100, 6, 0, 250)
    assert batches == int(SELECTION_BUDGET * 1100 *
                          ITER_COST_IN_EVAL_BATCHES / 6)
    cost = 6 * batches / ITER_COST_IN_EVAL_BATCHES  # in search iterations
    assert 0.09 * 1100 < cost <= 0.1 * 1100
    assert auto_eval_batches(10**6, 6, 0, 250) == 250  # the whole α part
    assert auto_eval_batches(2, 6, 0, 250) == 1  # never none
    # the shortest shipped search (embedded digits cls: 3 epochs of 8
    # batches) still stays within the budget with its single batch
    assert auto_eval_batches(24, 6, 0, 8) == 1
    assert 6 * 1 / ITER_COST_IN_EVAL_BATCHES <= 0.1 * 24
    # tuning shares the budget
    assert auto_eval_batches(1100, 84, 4 * 50, 250) < auto_eval_batches(
        1100, 84, 0, 250)
    # the hook's default ('auto') resolved from the search's length: see
    # _check_drops_independently (2 iterations: 1 batch)
    assert DASSearchHook().settings['selection']['eval_batches'] == 'auto'


# ---- end to end through tools/train.py --------------------------------------
def _search_outputs(work_dir, ops):
    policy = DASPolicy.load(osp.join(work_dir, 'policy.json'))
    DASPolicy.load(osp.join(work_dir, 'policy_argmax.json'))
    with open(osp.join(work_dir, 'das_selection.json')) as f:
        record = json.load(f)
    step, = record['perturbation']['steps']
    assert sorted(step['masked']) == sorted(ops)
    for masked in step['masked'].values():
        assert masked['drop'] == pytest.approx(
            step['base_metric'] - masked['metric'])
    assert [t['op'] for t in policy.transforms] == [step['kept']]
    assert step['kept'] == max(step['masked'],
                               key=lambda op: (step['masked'][op]['drop'],
                                               step['masked'][op]['weight']))
    with open(osp.join(work_dir, 'das_alpha_history.json')) as f:
        history = json.load(f)['history']
    assert history[0]['iter'] == 0 and len(history) >= 2
    assert history[0]['alphas'] != history[-1]['alphas']  # α moved
    for entry in history:
        assert sum(entry['weights'][0]) == pytest.approx(1.0, abs=1e-5)
    assert osp.getsize(osp.join(work_dir, 'das_alpha_history.png')) > 1000
    return policy, record


def _check_drops_independently(tmp_path, root, work, record, monkeypatch):
    """Each masked op's metric in ``record`` recomputed from the search's
    final checkpoint along a path of its own: softmax of the checkpoint's α
    with one weight zeroed (no renormalisation), BN on batch statistics
    and no dropout, pixel accuracy counted over the labelled pixels. Wrong
    masking, BN mode or metric in the selection would fail it."""
    import copy
    runner, hook = _runner(tmp_path, root, **{'train_cfg.max_iters': 2})
    hook.setup(runner)
    runner.load_checkpoint(osp.join(work, 'iter_2.pth'))
    # the batches the selection evaluates on (their sameness across
    # evaluations is tested above)
    batches = []
    pre = runner.model.data_preprocessor
    forward = pre.forward
    monkeypatch.setattr(
        pre, 'forward', lambda data, training=False:
        (batches.append(copy.deepcopy(data)), forward(data, training))[1])
    selection = hook.selection(runner)
    assert selection.num_batches == record['eval_batches'] == 1
    selection.evaluate()
    monkeypatch.undo()

    model = copy.deepcopy(runner.model)
    model.eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train()
    alphas = _final(work, 2)['state_dict']['data_preprocessor.cell.alphas']
    cell = model.data_preprocessor.cell
    step, = record['perturbation']['steps']
    for op in [None, *cell.ops]:
        weights = torch.softmax(alphas.float(), -1)
        if op is not None:
            weights[0, cell.ops.index(op)] = 0
        cell.set_edge_weights(weights)
        correct = counted = 0
        with torch.no_grad():
            for batch in batches:
                data = model.data_preprocessor(copy.deepcopy(batch), True)
                samples = data['data_samples']
                logits = model.encode_decode(data['inputs'],
                                             [s.metainfo for s in samples])
                gt = torch.stack([s.gt_sem_seg.data[0] for s in samples])
                assert logits.shape[-2:] == gt.shape[-2:] == (32, 32)
                valid = gt != 255
                correct += int((logits.argmax(1) == gt)[valid].sum())
                counted += int(valid.sum())
        metric = 100.0 * correct / counted
        if op is None:
            assert step['base_metric'] == pytest.approx(metric, abs=1e-4)
        else:
            assert step['masked'][op]['metric'] == pytest.approx(
                metric, abs=1e-4), op
            assert step['masked'][op]['drop'] == pytest.approx(
                step['base_metric'] - metric, abs=1e-4), op


def test_segmentation_search_then_training_twin(tiny_seg_root, tmp_path,
                                               monkeypatch):
    work = str(tmp_path / 'search')
    log = run_tool(TRAIN + [
        SEG_SEARCH, '--work-dir', work, '--cfg-options',
        *seg_options(tiny_seg_root, max_iters=2, size=32),
        'das_search.log_interval=1'
    ]).stdout
    assert train_iters(log) == [(1, 2), (2, 2)]
    assert re.search(r'arch_loss: [0-9.]+', log)
    assert 'DAS search, iter 1, softmax(alpha): edge 0: identity' in log
    # the log names the option that trains the twin with the policy
    assert f'--cfg-options model.data_preprocessor.policy={work}/policy.json' \
        in log
    policy, record = _search_outputs(
        work, ('identity', 'translate_x', 'translate_y', 'scale', 'rotate'))
    assert policy.num_frames == 4
    _check_drops_independently(tmp_path, tiny_seg_root, work, record,
                               monkeypatch)
    # softmax(α) reached the visualisation backend (LocalVisBackend here)
    scalars, = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    steps = [json.loads(line) for line in open(scalars)
             if 'das_search/edge0/rotate' in line]
    assert [s['step'] for s in steps] == [0, 1, 2]
    assert record['split']['num_weight_samples'] == 4

    # the training twin takes the file as is
    twin = run_tool(TRAIN + [
        SEG_TWIN, '--work-dir', str(tmp_path / 'twin'), '--cfg-options',
        *seg_options(tiny_seg_root, max_iters=2, size=32),
        f'model.data_preprocessor.policy={work}/policy.json'
    ]).stdout
    assert train_iters(twin) == [(1, 2), (2, 2)]
    assert re.search(r'mIoU: [0-9.]+', twin)
    assert 'arch_loss' not in twin
    dumped = Config.fromfile(str(tmp_path / 'twin' /
                                 'das_deeplabv3plus_r18_embedded.py'))
    assert dumped.model.data_preprocessor.policy == f'{work}/policy.json'


@pytest.mark.slow
def test_classification_search_then_training_twin(tiny_cls_root, tmp_path):
    work = str(tmp_path / 'search')
    log = run_tool(TRAIN + [
        CLS_SEARCH, '--work-dir', work, '--cfg-options',
        *cls_options(tiny_cls_root), 'das_search.log_interval=1',
        'das_search.selection.eval_batches=1'
    ]).stdout
    assert re.search(r'arch_loss: [0-9.]+', log)
    assert f'--cfg-options model.data_preprocessor.policy={work}/policy.json' in log
    _search_outputs(
        work, ('identity', 'translate_x', 'translate_y', 'scale', 'rotate'))
    twin = run_tool(TRAIN + [
        CLS_TWIN, '--work-dir', str(tmp_path / 'twin'), '--cfg-options',
        *cls_options(tiny_cls_root),
        f'model.data_preprocessor.policy={work}/policy.json'
    ]).stdout
    assert re.search(r'accuracy/top1: [0-9.]+', twin)


@pytest.mark.slow
def test_select_policy_tool_repeats_the_end_of_search_selection(
        tiny_seg_root, tmp_path):
    work = str(tmp_path / 'search')
    opts = seg_options(tiny_seg_root, max_iters=2)
    run_tool(TRAIN + [SEG_SEARCH, '--work-dir', work, '--cfg-options', *opts])
    out = str(tmp_path / 'select')
    run_tool(SELECT + [
        SEG_SEARCH, osp.join(work, 'iter_2.pth'), '--work-dir', out,
        '--cfg-options', *opts
    ])
    records = [
        json.load(open(osp.join(d, 'das_selection.json'))) for d in (work,
                                                                     out)
    ]
    assert records[0]['perturbation'] == records[1]['perturbation']
    assert records[0]['alphas'] == records[1]['alphas']
    assert open(osp.join(work, 'policy.json')).read() == open(
        osp.join(out, 'policy.json')).read()


def _final(work_dir, iters):
    from mmengine.runner.checkpoint import _load_checkpoint
    return _load_checkpoint(
        osp.join(work_dir, f'iter_{iters}.pth'), map_location='cpu')


@pytest.mark.slow
def test_resumed_search_equals_uninterrupted_search(tiny_seg_root, tmp_path):
    # dropout stays on: checkpoints hold the RNG state (RNGStateHook)
    opts = ['das_search.selection.enable=False']
    full, resumed = str(tmp_path / 'full'), str(tmp_path / 'resumed')
    run_tool(TRAIN + [
        SEG_SEARCH, '--work-dir', full, '--cfg-options',
        *seg_options(tiny_seg_root, max_iters=4), *opts
    ])
    run_tool(TRAIN + [
        SEG_SEARCH, '--work-dir', resumed, '--cfg-options',
        *seg_options(tiny_seg_root, max_iters=2), *opts
    ])
    log = run_tool(TRAIN + [
        SEG_SEARCH, '--work-dir', resumed, '--resume', '--cfg-options',
        *seg_options(tiny_seg_root, max_iters=4), *opts
    ]).stdout
    assert 'resumed epoch: 0, iter: 2' in log
    assert train_iters(log) == [(3, 4), (4, 4)]
    a, b = _final(full, 4), _final(resumed, 4)
    assert a['state_dict'].keys() == b['state_dict'].keys()
    alpha = 'data_preprocessor.cell.alphas'
    assert not torch.equal(_final(full, 2)['state_dict'][alpha],
                           a['state_dict'][alpha])
    for key in a['state_dict']:  # one process, one thread: bit-exact
        assert torch.equal(a['state_dict'][key], b['state_dict'][key]), key
    sa, sb = a['das_search'], b['das_search']
    assert sa['arch_steps'] == sb['arch_steps'] == 4
    assert sa['history'] == sb['history']
    for key in ('exp_avg', 'exp_avg_sq'):
        assert torch.allclose(sa['arch_optimizer']['state'][0][key],
                              sb['arch_optimizer']['state'][0][key],
                              rtol=0, atol=1e-9)


@pytest.mark.slow
def test_alpha_stays_equal_on_two_cpu_ranks(tiny_seg_root, tmp_path,
                                            monkeypatch):
    from test_dist import free_port
    config = tmp_path / 'probe_cfg.py'
    config.write_text(
        f'_base_ = [{SEG_SEARCH!r}]\n'
        "custom_imports = dict(imports=['mmdas', 'rank_probe_hook'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='DASSearchHook'), "
        "dict(type='RankProbeHook')]\n")
    work_dir = tmp_path / 'work'
    monkeypatch.setenv('PORT', str(free_port()))
    out = run_tool(
        ['bash', osp.join('tools', 'dist_train.sh'),
         str(config), '2', '--work-dir',
         str(work_dir), '--cfg-options',
         *seg_options(tiny_seg_root, max_iters=2, batch_size=1)],
        extra_pythonpath=[osp.join(REPO, 'tests')],
        timeout=600).stdout
    assert 'Distributed training: True' in out
    records = [
        json.load(open(work_dir / f'rank{rank}.json')) for rank in (0, 1)
    ]
    start = [r['start_alphas'] for r in records]
    end = [r['end_alphas'] for r in records]
    assert start[0] == start[1] and end[0] != start[0]
    # bit-identical on both ranks: the α gradient was averaged
    assert end[0] == end[1]
    # each rank trained the weights on its half of the weight part only
    seen = [set(r['img_paths']) for r in records]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 4
    assert DASPolicy.load(str(work_dir / 'policy.json'))


@pytest.mark.slow  # ~40 s: a 14-edge cell, tuned between edges
def test_multi_node_selection_tunes_and_writes_a_frozen_cell(
        tmp_path, tiny_seg_root):
    runner, hook = _runner(
        tmp_path, tiny_seg_root, **{
            'model.data_preprocessor.cell.num_nodes': 2,
            'das_search.selection': dict(
                tune_iters=1, eval_batches=1, criterion='mIoU')
        })
    hook.setup(runner)
    lrs = [g['lr'] for g in runner.optim_wrapper.optimizer.param_groups]
    before = _weights(runner.model)
    record = hook.select(runner)

    steps = record['perturbation']['steps']
    assert sorted(s['edge'] for s in steps) == list(range(5))
    assert all(len(s['masked']) == 5 for s in steps)
    # tuned between decisions (4 weight steps), learning rates restored
    assert any(not torch.equal(v, before[n])
               for n, v in _weights(runner.model).items())
    assert lrs == [g['lr'] for g in runner.optim_wrapper.optimizer.param_groups]
    assert hook.cell._fixed_weights is None

    path = osp.join(runner.work_dir, 'policy.json')
    with open(path) as f:
        data = json.load(f)
    assert data['type'] == 'FrozenDASCell' and data['num_nodes'] == 2
    assert data['genotype'] == record['perturbation']['genotype']
    # each node keeps its strongest input under the searched alpha
    assert data['node_inputs'] == hook.cell.strongest_inputs(data['genotype'])
    assert len(data['node_inputs']) == 2
    pre = DASSegDataPreProcessor(policy=path, mean=[0, 0, 0], std=[1, 1, 1])
    assert pre.cell.genotype() == data['genotype']
    assert pre.cell.node_inputs == data['node_inputs']
    assert pre.num_frames == 4
