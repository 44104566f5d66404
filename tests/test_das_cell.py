"""DASCell: DARTS mixture of image->video ops, gradients and selection."""
import pytest
import torch
from torch.func import functional_call

import mmdas  # noqa: F401
import mmdas.video as video_mod
from mmdas.models import DASCell
from mmdas.policy import DASPolicy
from mmdas.video import warp_frames


def _smooth(n=2, c=3, h=12, w=16, dtype=torch.float32):
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype),
        indexing='ij')
    img = torch.stack([
        torch.sin(xs / 3 + k) * torch.cos(ys / 4 - k) for k in range(n * c)
    ])
    return img.reshape(n, c, h, w)


@pytest.fixture
def count_warps(monkeypatch):
    calls = []
    real = video_mod.warp

    def counting(*args, **kwargs):
        calls.append(args[0].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(video_mod, 'warp', counting)
    return calls


def test_shapes_and_init():
    torch.manual_seed(0)
    cell = DASCell(num_frames=6)
    assert cell.alphas.shape == (1, 5) and cell.num_edges == 1
    video, mats = cell(torch.rand(2, 3, 10, 14))
    assert video.shape == (2, 6, 3, 10, 14) and mats.shape == (6, 3, 3)
    dag = DASCell(num_nodes=4)
    assert dag.alphas.shape == (14, 5)
    assert 1e-4 < dag.alphas.std().item() < 1e-2
    assert DASCell(num_nodes=2).num_edges == 5
    assert {n for n, _ in dag.named_parameters()} == {'alphas'}
    learn = DASCell(learnable_magnitudes=True)
    assert {n for n, _ in learn.named_parameters()} == {'alphas',
                                                        'magnitudes'}


def test_mixture_is_the_weighted_sum_of_op_videos():
    cell = DASCell(ops=('identity', 'translate_x', 'rotate'), num_frames=4,
                   magnitudes=dict(rotate=10.0))
    images = _smooth()
    weights = torch.tensor([[0.2, 0.5, 0.3]])
    video, mats = cell(images, weights=weights)
    reps = images[:, None].expand(-1, 4, -1, -1, -1)
    per_op = cell.op_matrices(12, 16)
    want = 0.2 * reps + 0.5 * warp_frames(reps, per_op[1]) + \
        0.3 * warp_frames(reps, per_op[2])
    assert torch.allclose(video, want, atol=1e-6)
    # maps of the strongest op
    assert torch.equal(mats, per_op[1])
    # the reference frame of a mixture whose weights sum to 1 is the image
    assert torch.allclose(video[:, 2], images, atol=1e-6)


def test_zero_weight_ops_are_skipped(count_warps):
    cell = DASCell(num_frames=3)
    images = torch.rand(2, 3, 8, 8)
    cell(images)
    assert len(count_warps) == 4  # every op but identity, one call each
    count_warps.clear()
    onehot = torch.tensor([[0., 0., 0., 0., 1.]])
    video, mats = cell(images, weights=onehot)
    assert count_warps == [6]  # one batched call: N * T frames
    policy = DASPolicy([dict(op='rotate', magnitude=5.0)], num_frames=3)
    assert torch.equal(mats, policy.matrices(8, 8))
    want = warp_frames(images[:, None].expand(-1, 3, -1, -1, -1), mats)
    assert torch.equal(video, want)
    # set_edge_weights does the same for calls without `weights`
    count_warps.clear()
    cell.set_edge_weights(onehot)
    assert torch.equal(cell(images)[0], want) and count_warps == [6]
    assert cell.genotype() == ['rotate']
    assert cell.to_policy() == policy
    cell.set_edge_weights(None)
    assert torch.allclose(cell.edge_weights().sum(), torch.tensor(1.0))


def test_perturbation_keeps_other_weights_unnormalised():
    torch.manual_seed(1)
    cell = DASCell(num_frames=3)
    images = _smooth(n=1)
    w = cell.edge_weights().detach().clone()
    removed = w.clone()
    removed[0, 3] = 0
    out, _ = cell(images, weights=removed)
    full, _ = cell(images, weights=w)
    scale_only = torch.zeros_like(w)
    scale_only[0, 3] = 1
    only, _ = cell(images, weights=scale_only)
    assert torch.allclose(full, out + w[0, 3] * only, atol=1e-6)


def test_dag_composes_along_the_dominant_path():
    cell = DASCell(num_nodes=4, num_frames=5,
                   magnitudes=dict(translate_x=0.05, rotate=6.0))
    ops = list(cell.ops)
    w = torch.zeros(14, 5)
    # node0 <- input0 translate_x; node1 <- node0 rotate;
    # node2 <- node1 identity; node3 <- node2 identity
    w[0, ops.index('translate_x')] = 1  # edges 0,1: node0 from s0, s1
    w[2 + 2, ops.index('rotate')] = 1  # edges 2..4: node1 from s0,s1,n0
    w[5 + 3, ops.index('identity')] = 1  # edges 5..8: node2 from ..,n1
    w[9 + 4, ops.index('identity')] = 1  # edges 9..13: node3 from ..,n2
    images = _smooth(n=1, h=24, w=32)
    video, mats = cell(images, weights=w)
    policy = DASPolicy([
        dict(op='translate_x', magnitude=0.05),
        dict(op='rotate', magnitude=6.0)
    ], num_frames=5)
    assert torch.allclose(mats, policy.matrices(24, 32), atol=1e-6)
    direct = warp_frames(images[:, None].expand(-1, 5, -1, -1, -1), mats)
    # two bilinear warps vs one composed warp: equal away from borders
    inner = (slice(None), slice(None), slice(None), slice(5, -5),
             slice(5, -5))
    assert (video - direct)[inner].abs().max() < 0.05
    assert torch.equal(video[:, 2], images)


def test_alpha_gradients_match_finite_differences():
    torch.manual_seed(0)
    cell = DASCell(num_frames=3, num_nodes=2,
                   magnitudes=dict(translate_x=0.07, translate_y=0.04,
                                   scale=1.1, rotate=7.0)).double()
    images = _smooth(n=1, c=1, h=5, w=6, dtype=torch.float64)
    alphas = torch.randn(cell.num_edges, 5, dtype=torch.float64,
                         requires_grad=True)

    def f(a):
        return functional_call(cell, {'alphas': a}, (images, ))[0]

    assert torch.autograd.gradcheck(f, (alphas, ), eps=1e-6, atol=1e-5)
    # and through the data-dependent path: grad reaches cell.alphas
    cell(images)[0].pow(2).sum().backward()
    assert cell.alphas.grad is not None and cell.alphas.grad.abs().sum() > 0


def test_learnable_magnitude_gradients_match_finite_differences():
    torch.manual_seed(0)
    cell = DASCell(num_frames=3, learnable_magnitudes=True,
                   magnitudes=dict(translate_x=0.07, translate_y=0.04,
                                   scale=1.1, rotate=7.0)).double()
    images = _smooth(n=1, c=1, h=5, w=6, dtype=torch.float64)
    alphas = cell.alphas.detach().clone().requires_grad_()
    mags = cell.magnitudes.detach().clone().requires_grad_()

    def f(a, m):
        return functional_call(cell, {'alphas': a, 'magnitudes': m},
                               (images, ))[0]

    assert torch.autograd.gradcheck(f, (alphas, mags), eps=1e-6, atol=1e-5)
    cell(images)[0].sum().backward()
    grad = cell.magnitudes.grad
    assert grad[0] == 0  # identity has no magnitude
    assert (grad[1:].abs() > 0).all()


@pytest.mark.parametrize('kwargs, message', [
    (dict(ops=('identity', 'zoom')), r"DASCell.ops\[1\]: unknown DAS op "
     r"'zoom'"),
    (dict(magnitudes=dict(rotate=400)), r"DASCell.magnitudes\['rotate'\]: "
     r'magnitude 400'),
    (dict(magnitudes=dict(shear_x=0.1)), r"DASCell.magnitudes: \['shear_x'\]"
     r' are not in DASCell.ops'),
    (dict(num_frames=0), r'DASCell.num_frames: 0 is invalid'),
    (dict(profile='back'), r"DASCell.profile: unknown frame profile 'back'"),
])
def test_bad_cells_fail_at_build_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DASCell(**kwargs)


# ---- issue 21.4: the frozen multi-node cell -------------------------------
def _frozen(**kwargs):
    from mmdas.models import FrozenDASCell
    # 2 nodes, 5 edges: node 0 <- (0, 1), node 1 <- (0, 1, node 0)
    args = dict(ops=('identity', 'translate_x', 'translate_y'),
                magnitudes=dict(translate_x=2 / 16, translate_y=2 / 12),
                num_frames=3, num_nodes=2,
                genotype=['translate_x', 'translate_y', 'translate_x',
                          'identity', 'translate_y'])
    args.update(kwargs)
    return FrozenDASCell(**args)


def test_frozen_multi_node_cell_is_one_path_with_its_exact_map():
    """Summing every edge made frames a superposition of 4 warped copies
    (reference intensity x4) while the returned map was one tie-broken
    path. Pruned to one input per node (weight 1), the frames are the
    path's ops composed and the map is exactly theirs."""
    from mmdas import geometry
    img = _smooth(n=2, h=12, w=16)
    cell = _frozen(node_inputs=[1, 2])  # node 0 <- input 1 (translate_y),
    # node 1 <- node 0 (translate_y): translate_y twice, 2 px per step each
    assert cell.path() == [(1, 'translate_y'), (4, 'translate_y')]
    frames, mats = cell(img)
    ref = geometry.reference_frame(3)
    assert torch.equal(frames[:, ref], img)  # intensities kept, exactly
    offsets = geometry.frame_offsets(3)
    ty = geometry.op_matrices('translate_y', 2 / 12, offsets, 12, 16)
    assert torch.allclose(mats, ty @ ty, atol=1e-6)
    # one warp with the returned map makes the same frames
    again = warp_frames(img[:, None].expand(-1, 3, -1, -1, -1), mats)
    assert torch.allclose(frames, again, atol=1e-5)
    # the frame at +1 is the image moved down by 4 px (2 per node)
    assert torch.allclose(frames[:, ref + 1, :, 4:], img[:, :, :-4],
                          atol=1e-5)
    # the other path: node 1 <- input 0 (translate_x), node 0 not computed
    cell = _frozen(node_inputs=[0, 0])
    assert cell.path() == [(2, 'translate_x')]
    frames, mats = cell(img)
    tx = geometry.op_matrices('translate_x', 2 / 16, offsets, 12, 16)
    assert torch.allclose(mats, tx) and torch.equal(frames[:, ref], img)
    # the genotype and the one-hot op of every edge stay those given
    assert cell.genotype()[0] == 'translate_x'
    assert cell.edge_weights().sum() == 5


def test_frozen_multi_node_cell_with_inverse_warp_restores_the_image():
    """The training twin of a multi-node search fuses with inverse_warp:
    frames as logits fuse back to the image."""
    from mmengine.registry import init_default_scope
    from mmdas.models.decode_heads import TemporalFusionHead
    init_default_scope('mmseg')
    img = _smooth(n=1, h=12, w=16)
    cell = _frozen(node_inputs=[1, 2])
    frames, mats = cell(img)
    head = TemporalFusionHead(wrapped_type='FCNHead', in_channels=4,
                              channels=4, num_convs=1, num_classes=3)
    fused = head.fuse(frames[0], [dict(das_matrices=mats)])
    assert (fused - img).abs().max() < 1e-4
    # the unpruned sum of every edge (what the cell used to make) does not
    summed = DASCell(ops=cell.ops, magnitudes=dict(
        translate_x=2 / 16, translate_y=2 / 12), num_frames=3, num_nodes=2)
    sum_frames, _ = summed(img, weights=cell.edge_weights())
    assert torch.allclose(sum_frames[:, 1], 4 * img)


def test_strongest_inputs_and_bad_node_inputs():
    cell = DASCell(ops=('identity', 'rotate'), num_frames=3, num_nodes=2)
    with torch.no_grad():
        cell.alphas.zero_()
        cell.alphas[1, 1] = 2.0  # node 0: input 1's rotate is strongest
        cell.alphas[4, 0] = 3.0  # node 1: node 0's identity is strongest
    genotype = ['identity', 'rotate', 'identity', 'identity', 'identity']
    assert cell.strongest_inputs(genotype) == [1, 2]
    frozen = _frozen(node_inputs=None)  # older files: the chain, logged
    assert frozen.node_inputs == [1, 2]
    for bad in ([0], [0, 3], [True, 0], 'ab'):
        with pytest.raises(ValueError, match='FrozenDASCell.node_inputs'):
            _frozen(node_inputs=bad)
    with pytest.raises(ValueError, match='weights are fixed'):
        frozen(_smooth(n=1), weights=frozen.edge_weights())


def test_config_with_a_searching_cell_and_inverse_warp_is_refused():
    from mmengine.config import Config
    from mmdas.utils.launch import check_das_cell_fusion
    head = dict(type='TemporalFusionHead', wrapped_type='FCNHead')
    cfg = dict(model=dict(
        data_preprocessor=dict(type='DASSegDataPreProcessor',
                               cell=dict(type='DASCell', num_nodes=2)),
        decode_head=head, auxiliary_head=[dict(head, fusion='mean')]))
    with pytest.raises(ValueError, match=r"model\.decode_head\.fusion="
                       r"'inverse_warp'.*no single inverse map"):
        check_das_cell_fusion(Config(cfg))
    check_das_cell_fusion(Config(dict(cfg, das_search=dict())))  # the hook
    cfg['model']['decode_head'] = dict(head, fusion='mean')
    check_das_cell_fusion(Config(cfg))
    cfg['model']['auxiliary_head'] = [head]
    cfg['model']['data_preprocessor']['cell']['type'] = 'FrozenDASCell'
    check_das_cell_fusion(Config(cfg))  # one path: a single map
