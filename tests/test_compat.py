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

from mmdas import checkpoint_loading, compat

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
        from mmdas import checkpoint_loading, compat
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
    assert CheckpointLoader._schemes['https://'] is \
        checkpoint_loading.load_checkpoint_url
    assert CheckpointLoader._schemes['open-mmlab://'] is \
        checkpoint_loading.load_model_zoo_checkpoint


def test_checkpoint_fix_is_scoped_to_mmengine(tmp_path):
    """Plain ``torch.load`` keeps torch's safe default."""
    path = str(tmp_path / 'iter_4.pth')
    _mmengine_like_checkpoint(path)
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        torch.load(path)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        compat.load_checkpoint_file(str(tmp_path / 'nothing.pth'))


# --- checkpoints load without running code from them ----------------------


def _zoo_style_checkpoint():
    """What an mmseg/mmpretrain model-zoo or mmengine checkpoint holds."""
    from collections import OrderedDict

    from mmengine.logging import HistoryBuffer
    loss = HistoryBuffer()
    for step in range(3):
        loss.update(0.5 / (step + 1))
    return dict(
        meta=dict(
            epoch=np.int64(12),
            seed=np.int32(7),
            best=np.float64(80.09),
            lr=np.float32(1e-2),
            done=np.bool_(True),
            hist=np.arange(6, dtype=np.int64).reshape(2, 3),
            weights=np.linspace(0, 1, 4, dtype=np.float32),
            dataset_meta=dict(classes=('road', 'car'),
                              palette=[[128, 64, 128], [0, 0, 142]]),
            env_info='sys.platform: linux',
            config="model = dict(type='EncoderDecoder')"),
        state_dict=OrderedDict(w=torch.ones(2, 3), b=torch.zeros(3)),
        message_hub=dict(
            log_scalars={'train/loss': loss},
            runtime_info=dict(eta=np.float64(0.0), keep_ckpt_ids=[2, 4])))


def _check_zoo_style(ckpt):
    meta = ckpt['meta']
    assert meta['epoch'] == 12 and meta['epoch'].dtype == np.int64
    assert meta['lr'].dtype == np.float32 and bool(meta['done'])
    assert meta['hist'].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert meta['weights'].dtype == np.float32
    assert meta['dataset_meta']['classes'] == ('road', 'car')
    loss = ckpt['message_hub']['log_scalars']['train/loss']
    assert loss.mean() == pytest.approx((0.5 + 0.25 + 0.5 / 3) / 3)
    assert loss.current() == pytest.approx(0.5 / 3)
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2, 3))


def test_zoo_style_checkpoint_with_meta_loads(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = str(tmp_path / 'zoo.pth')
    torch.save(_zoo_style_checkpoint(), path)
    # the HistoryBuffer pickles getattr(HistoryBuffer, <statistic>)
    assert 'builtins.getattr' in \
        torch.serialization.get_unsafe_globals_in_checkpoint(path)
    _check_zoo_style(_load_checkpoint(path, map_location='cpu'))
    # the allow-list was scoped to that load
    assert not set(checkpoint_loading.checkpoint_safe_globals()) & set(
        torch.serialization.get_safe_globals())


def test_checkpoint_pickled_under_numpy1_loads(tmp_path):
    """Model-zoo files written with numpy 1 name ``numpy.core.multiarray``."""
    path = tmp_path / 'numpy1.pth'
    # the legacy format is one pickle stream, so renaming is a byte edit
    torch.save(_zoo_style_checkpoint(), str(path),
               _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    assert b'numpy._core.multiarray' in data
    path.write_bytes(data.replace(b'numpy._core.multiarray',
                                  b'numpy.core.multiarray'))
    _check_zoo_style(compat.load_checkpoint_file(str(path)))


class _RunsShell:
    """Pickles as a call of os.system: what a hostile checkpoint holds."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os
        return os.system, (self.command, )


def _hostile_checkpoint(path, marker):
    torch.save(
        dict(state_dict=dict(w=torch.ones(1)),
             meta=dict(note=_RunsShell(f'touch {marker}'))), str(path))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'payload.pth'
    _hostile_checkpoint(path, marker)
    with pytest.raises(compat.UntrustedCheckpointError) as err:
        _load_checkpoint(str(path), map_location='cpu')
    message = str(err.value)
    assert 'payload.pth' in message and 'system' in message
    assert 'never runs code' in message
    assert 'MMDAS_TRUSTED_CHECKPOINTS=1' in message
    assert not marker.exists()


class _GetattrCall:

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


@pytest.mark.parametrize('owner,name', [
    ('HistoryBuffer', '__init__'),
    ('HistoryBuffer', 'update'),
    ('ndarray', 'tofile'),
])
def test_getattr_only_reaches_listed_attributes(tmp_path, owner, name):
    from mmengine.logging import HistoryBuffer
    owner = dict(HistoryBuffer=HistoryBuffer, ndarray=np.ndarray)[owner]
    path = str(tmp_path / 'getattr.pth')
    torch.save(dict(x=_GetattrCall(owner, name)), path)
    with pytest.raises(compat.UntrustedCheckpointError,
                       match=f'getattr.*{name}.*not an allowed'):
        compat.load_checkpoint_file(path)
    import os
    with pytest.raises(compat.UntrustedCheckpointError):
        compat.allowlisted_getattr(os, 'system')


def test_trusted_opt_in_loads_a_legacy_file(tmp_path, monkeypatch):
    import datetime
    path = str(tmp_path / 'legacy.pth')
    torch.save(dict(meta=dict(date=datetime.date(2024, 6, 1))), path)
    with pytest.raises(compat.UntrustedCheckpointError,
                       match='datetime.date'):
        compat.load_checkpoint_file(path)
    monkeypatch.setenv('MMDAS_TRUSTED_CHECKPOINTS', '1')
    ckpt = compat.load_checkpoint_file(path)
    assert ckpt['meta']['date'] == datetime.date(2024, 6, 1)


def test_damaged_file_is_unreadable_not_untrusted(tmp_path):
    import pickle
    path = tmp_path / 'noise.pth'
    path.write_bytes(b'not a checkpoint at all')
    with pytest.raises(pickle.UnpicklingError,
                       match='not a readable checkpoint') as err:
        compat.load_checkpoint_file(str(path))
    assert not isinstance(err.value, compat.UntrustedCheckpointError)


@pytest.fixture
def hub_cache(tmp_path):
    """torch hub's cache in tmp_path: URLs whose file is cached load without
    network, as after a first download."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    cache = tmp_path / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    yield cache
    torch.hub.set_dir(old)


def test_url_checkpoints_load_through_the_same_guard(hub_cache):
    from mmengine.runner.checkpoint import _load_checkpoint
    torch.save(_zoo_style_checkpoint(), str(hub_cache / 'zoo-1234abcd.pth'))
    _check_zoo_style(
        _load_checkpoint('https://download.invalid/m/zoo-1234abcd.pth'))
    marker = hub_cache / 'code_ran'
    _hostile_checkpoint(hub_cache / 'evil.pth', marker)
    with pytest.raises(compat.UntrustedCheckpointError,
                       match='https://download.invalid/evil.pth'):
        _load_checkpoint('https://download.invalid/evil.pth')
    assert not marker.exists()


def test_model_zoo_names_load_through_the_same_guard(hub_cache):
    """``open-mmlab://`` (mmseg's ResNetV1c pretrained weights) resolves with
    mmengine's table and loads with mmdas's URL loader."""
    from mmengine.runner.checkpoint import _load_checkpoint, \
        get_external_models
    url = get_external_models()['resnet50_v1c']
    marker = hub_cache / 'code_ran'
    _hostile_checkpoint(hub_cache / osp.basename(url), marker)
    with pytest.raises(compat.UntrustedCheckpointError, match=url):
        _load_checkpoint('open-mmlab://resnet50_v1c')
    assert not marker.exists()
