"""The compatibility layer applied by ``import mmdas``."""
import inspect
import os.path as osp
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmdas import compat

LITE = not compat.mmcv_has_compiled_ops()


@pytest.mark.skipif(not LITE, reason='full mmcv installed: no fallback')
def test_fallback_serves_mmcvs_own_pure_torch_ops():
    import mmcv
    import mmcv.ops
    assert getattr(mmcv.ops, '__mmdas_fallback__', False)
    # the real function from mmcv-lite's file, not a re-implementation
    source = inspect.getsourcefile(mmcv.ops.point_sample)
    assert source == osp.join(osp.dirname(mmcv.__file__), 'ops',
                              'point_sample.py')
    feats = torch.arange(16.).view(1, 1, 4, 4)
    points = torch.tensor([[[0.125, 0.125], [0.875, 0.375]]])  # pixel centres
    out = mmcv.ops.point_sample(feats, points, align_corners=False)
    assert out.flatten().tolist() == [0.0, 7.0]
    grid = points.unsqueeze(2) * 2 - 1
    expected = F.grid_sample(feats, grid, align_corners=False).squeeze(-1)
    assert torch.equal(out, expected)


@pytest.mark.skipif(not LITE, reason='full mmcv installed: no fallback')
def test_compiled_op_raises_clear_error_when_called():
    from mmcv.ops import CrissCrossAttention, sigmoid_focal_loss
    with pytest.raises(RuntimeError, match='CrissCrossAttention.*full mmcv'):
        CrissCrossAttention(64)
    with pytest.raises(RuntimeError, match='sigmoid_focal_loss.*mmcv-lite'):
        sigmoid_focal_loss(torch.zeros(1), torch.zeros(1))


def test_all_of_mmseg_imports():
    import mmseg.apis  # noqa: F401
    import mmseg.datasets  # noqa: F401
    import mmseg.models  # noqa: F401
    import mmseg.utils  # noqa: F401
    import mmseg.visualization  # noqa: F401
    from mmseg.registry import MODELS
    assert MODELS.get('DepthwiseSeparableASPPHead') is not None


def test_fallback_leaves_working_mmcv_ops_alone():
    """Where ``mmcv.ops`` imports (full mmcv), ``import mmdas`` changes
    nothing: simulated by a working module already in ``sys.modules``."""
    code = textwrap.dedent("""
        import sys, types
        full_ops = types.ModuleType('mmcv.ops')
        # stands for full mmcv's module: every op exists
        def op(name):
            if name.startswith('__'):
                raise AttributeError(name)
            return lambda *a, **k: 'compiled'
        full_ops.__getattr__ = op
        sys.modules['mmcv.ops'] = full_ops
        import mmdas
        from mmdas import compat
        assert sys.modules['mmcv.ops'] is full_ops
        assert not compat.install_mmcv_ops_fallback()
        from mmcv.ops import point_sample
        assert point_sample() == 'compiled'
        print('untouched')
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'untouched' in out.stdout


@pytest.mark.skipif(LITE, reason='mmcv-lite installed: the fallback is used')
def test_full_mmcv_stands_aside_and_its_ops_run():
    """With full mmcv (``MMCV_FULL=1 make venv``) the real ``mmcv.ops`` is in
    place after ``import mmdas`` and its compiled ops run."""
    import mmcv
    import mmcv.ops
    assert not getattr(mmcv.ops, '__mmdas_fallback__', False)
    assert mmcv.ops.__file__ == osp.join(
        osp.dirname(mmcv.__file__), 'ops', '__init__.py')
    assert 'mmcv._ext' in sys.modules
    assert not compat.install_mmcv_ops_fallback()
    assert sys.modules['mmcv.ops'] is mmcv.ops
    assert not isinstance(mmcv.ops.CrissCrossAttention,
                          compat.MissingCompiledOp)
    # box 1 overlaps box 0 with IoU 0.81 and goes; box 2 is apart and stays
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                          [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = mmcv.ops.nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert torch.equal(dets[:, 4], torch.tensor([0.9, 0.7]))


def _mmengine_like_checkpoint(path):
    from mmengine.logging import HistoryBuffer
    torch.save(
        dict(
            state_dict=dict(w=torch.ones(2)),
            message_hub=dict(log_scalars=dict(loss=HistoryBuffer([1.0], [1]))),
            meta=dict(seed=np.int64(3), iter=np.array([4]))), path)


def test_checkpoint_loader_reads_mmengine_checkpoints(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
    path = str(tmp_path / 'iter_4.pth')
    _mmengine_like_checkpoint(path)
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    assert int(ckpt['meta']['seed']) == 3
    assert CheckpointLoader._schemes[''] is compat.load_checkpoint_file


def test_checkpoint_fix_is_scoped_to_mmengine(tmp_path):
    """Plain ``torch.load`` keeps torch's safe default."""
    path = str(tmp_path / 'iter_4.pth')
    _mmengine_like_checkpoint(path)
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        torch.load(path)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        compat.load_checkpoint_file(str(tmp_path / 'nothing.pth'))
