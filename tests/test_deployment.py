"""ONNX export of DAS models (tools/deployment/pytorch2onnx.py,
mmdas.deployment): one graph from raw images to the fused prediction, with
parity in onnxruntime."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, run_tool
from mmdas.deployment import (ImageToPrediction, inverse_3x3, maps_for_size,
                              square_op_maps)
from mmdas.geometry import affine_grid
from mmdas.policy import build_policy

onnxruntime = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

TOOL = osp.join(REPO, 'tools', 'deployment', 'pytorch2onnx.py')
DEMO = osp.join(REPO, 'configs', 'das_deeplabv3plus_r18_embedded.py')

# A DAS segmentor small enough to export in seconds: the demo's GSF
# ResNetV1c cut to two stages, an FCN head with inverse-warp fusion.
SMALL_SEG = f"""
_base_ = {DEMO!r}
das_policy = dict(
    transforms=[dict(op='rotate', magnitude=10.0),
                dict(op='translate_x', magnitude=0.05)],
    num_frames=3, profile='symmetric')
model = dict(
    data_preprocessor=dict(policy=das_policy),
    # 'official': gates that mix the frames from the start
    backbone=dict(num_frames=3, num_stages=2, out_indices=(1, ),
                  strides=(1, 2), dilations=(1, 1), gsf_init='official'),
    decode_head=dict(
        _delete_=True, type='TemporalFusionHead', wrapped_type='FCNHead',
        in_channels=64, in_index=0, channels=16, num_convs=1,
        concat_input=False, num_classes=5, align_corners=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    auxiliary_head=None)
"""


def _build(config):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return MODELS.build(cfg.model).eval()


def test_grid_from_plain_ops_is_affine_grids():
    theta = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0))
    for height, width in ((5, 7), (16, 16), (1, 3)):
        ours = affine_grid(theta, height, width)
        theirs = F.affine_grid(theta, [4, 1, height, width],
                               align_corners=False)
        assert torch.allclose(ours, theirs, atol=2e-6)


def test_inverse_3x3_is_the_matrix_inverse():
    mats = torch.randn(6, 3, 3, dtype=torch.float64) + 3 * torch.eye(3)
    assert torch.allclose(inverse_3x3(mats), torch.linalg.inv(mats))
    with pytest.raises(ValueError, match=r'\[\.\.\., 3, 3\]'):
        inverse_3x3(torch.eye(2))


def test_maps_in_the_graph_are_the_policys_at_every_size():
    policy = build_policy(dict(
        transforms=[dict(op='translate_x', magnitude=0.1),
                    dict(op='rotate', magnitude=12.0),
                    dict(op='shear_y', magnitude=0.2),
                    dict(op='scale', magnitude=1.1),
                    dict(op='translate_y', magnitude=-0.05)],
        num_frames=5, profile='symmetric'))
    square = square_op_maps(policy)
    for height, width in ((80, 80), (64, 112), (120, 48)):
        assert torch.allclose(maps_for_size(square, height, width),
                              policy.matrices(height, width), atol=1e-6)


def test_search_model_is_refused_with_the_policy_to_use():
    model = _build(osp.join(REPO, 'configs',
                            'das_search_deeplabv3plus_r18_embedded.py'))
    with pytest.raises(ValueError, match=r'model\.data_preprocessor\.cell.*'
                       r'policy\.json'):
        ImageToPrediction(model)


def test_slide_inference_is_refused():
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO)
    cfg.model.test_cfg = dict(mode='slide', crop_size=(40, 40),
                              stride=(20, 20))
    with pytest.raises(ValueError, match=r"model\.test_cfg\.mode='slide'"):
        ImageToPrediction(_build(cfg))


@pytest.mark.slow  # ~70 s: an export and onnxruntime at three sizes
def test_small_das_segmentor_exports_with_parity(tmp_path):
    """The tool on a small GSF segmentor whose gates mix frames: one graph from raw images to fused logits of their size, equal to
    PyTorch's inference at two sizes in onnxruntime."""
    config = tmp_path / 'small_das_seg.py'
    config.write_text(SMALL_SEG)
    torch.manual_seed(0)
    model = _build(str(config))
    model.init_weights()
    gates = [m.gate_conv.weight for m in model.backbone.temporal_modules()]
    assert gates and all(bool(g.abs().sum() > 0) for g in gates)
    checkpoint = str(tmp_path / 'small.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), checkpoint)
    out, figures = str(tmp_path / 'small.onnx'), str(tmp_path / 'fig.json')
    proc = run_tool([
        'python', TOOL, str(config), checkpoint, '--out', out, '--shape',
        '48', '64', '--dynamic', '--num-images', '2', '--json', figures,
        '--fail-over'
    ], timeout=900)
    assert 'parity OK' in proc.stdout, proc.stdout[-3000:]
    report = json.loads(open(figures).read())
    assert [tuple(c['shape']) for c in report['checks']] == [
        (2, 3, 48, 64), (2, 3, 64, 96)]
    for check in report['checks']:
        assert check['max_abs_diff'] <= 1e-4
        assert check['argmax_agreement'] >= 0.999
        assert check['onnxruntime_s_per_image'] > 0
    # the graph takes raw images of any size and returns their fused map
    import onnx
    graph = onnx.load(out).graph
    ops = {node.op_type for node in graph.node}
    assert 'GridSample' in ops  # the frames and the inverse warp
    session = onnxruntime.InferenceSession(
        out, providers=['CPUExecutionProvider'])
    images = np.random.default_rng(0).uniform(0, 255, (1, 3, 40, 56))
    logits = session.run(None, {'images': images.astype(np.float32)})[0]
    assert logits.shape == (1, 5, 40, 56)


def test_opset_without_grid_sample_is_refused(tmp_path):
    from mmdas.deployment import export_onnx
    wrapper = ImageToPrediction(_build(DEMO))
    with pytest.raises(ValueError, match=r'--opset 15.*GridSample'):
        export_onnx(wrapper, torch.zeros(1, 3, 80, 80),
                    str(tmp_path / 'm.onnx'), opset=15)
    assert not (tmp_path / 'm.onnx').exists()
