"""DAS data preprocessors: on-device frames equal the CPU transform's."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

import mmdas  # noqa: F401
from mmdas.datasets.transforms import (DASImageToVideo, PackDASInputs,
                                       PackDASSegInputs)
from mmdas.models import (DASCell, DASClsDataPreprocessor,
                          DASSegDataPreProcessor)
from mmdas.video import stack_frames, unstack_frames

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
POLICY = dict(
    transforms=[
        dict(op='rotate', magnitude=7.0),
        dict(op='translate_x', magnitude=0.05),
        dict(op='scale', magnitude=1.08)
    ],
    num_frames=5)
H, W = 24, 32


def _images(n=2, seed=0):
    rng = np.random.RandomState(seed)
    return [(rng.randint(0, 256, (H, W, 3)).astype(np.uint8),
             rng.randint(0, 4, (H, W)).astype(np.uint8)) for _ in range(n)]


def _collate(packed):
    return dict(
        inputs=[p['inputs'] for p in packed],
        data_samples=[p['data_samples'] for p in packed])


def _seg_batches(policy=POLICY):
    from mmseg.datasets.transforms import PackSegInputs
    to_video = DASImageToVideo(policy)
    cpu, dev = [], []
    for img, seg in _images():
        sample = dict(img=img.copy(), gt_seg_map=seg.copy(), img_shape=(H, W))
        cpu.append(PackDASSegInputs()(to_video(dict(sample))))
        dev.append(PackSegInputs()(dict(sample)))
    return _collate(cpu), _collate(dev)


@pytest.mark.parametrize('training', [True, False])
def test_seg_cpu_transform_equals_device_frames(training):
    cpu_batch, dev_batch = _seg_batches()
    common = dict(mean=MEAN, std=STD, bgr_to_rgb=True, size=(H, W))
    from_pipeline = DASSegDataPreProcessor(**common)
    on_device = DASSegDataPreProcessor(policy=POLICY, **common)
    assert not from_pipeline.generates_frames and on_device.generates_frames
    a = from_pipeline(cpu_batch, training)
    b = on_device(dev_batch, training)
    assert a['inputs'].shape == b['inputs'].shape == (2, 15, H, W)
    assert torch.allclose(a['inputs'], b['inputs'], atol=1e-4)
    # the reference frame is the normalised RGB image, bit for bit
    img = torch.from_numpy(_images()[0][0]).permute(2, 0, 1).float()
    rgb = (img.flip(0) - torch.tensor(MEAN)[:, None, None]) / \
        torch.tensor(STD)[:, None, None]
    assert torch.equal(b['inputs'][0, 6:9], rgb)
    assert torch.equal(a['inputs'][0, 6:9], rgb)
    # outside the image: black, normalised (not the mean colour)
    corner = b['inputs'][0, 0:3, 0, 0]
    assert torch.allclose(corner, -torch.tensor(MEAN) / torch.tensor(STD),
                          atol=1e-3)
    for sa, sb in zip(a['data_samples'], b['data_samples']):
        ma, mb = sa.metainfo['das_matrices'], sb.metainfo['das_matrices']
        assert isinstance(ma, torch.Tensor) and ma.dtype == torch.float32
        assert ma.shape == (5, 3, 3) and torch.equal(ma, mb)
        assert sa.das_num_frames == sb.das_num_frames == 5
        assert sa.das_reference_frame == sb.das_reference_frame == 2
        # the fusion target is the original label map
        assert torch.equal(sa.gt_sem_seg.data, sb.gt_sem_seg.data)


def test_cls_cpu_transform_equals_device_frames():
    from mmpretrain.datasets.transforms import PackInputs
    to_video = DASImageToVideo(POLICY)
    cpu, dev = [], []
    for label, (img, _) in enumerate(_images()):
        sample = dict(img=img.copy(), gt_label=label, img_shape=(H, W))
        cpu.append(PackDASInputs()(to_video(dict(sample))))
        dev.append(PackInputs()(dict(sample)))
    common = dict(mean=MEAN, std=STD, to_rgb=True)
    a = DASClsDataPreprocessor(**common)(_collate(cpu), True)
    b = DASClsDataPreprocessor(policy=POLICY, **common)(_collate(dev), True)
    assert a['inputs'].shape == b['inputs'].shape == (2, 15, H, W)
    assert torch.allclose(a['inputs'], b['inputs'], atol=1e-4)
    assert [s.gt_label.item() for s in b['data_samples']] == [0, 1]
    assert torch.equal(a['data_samples'][1].das_matrices,
                       b['data_samples'][1].das_matrices)
    # default_collate gives one stacked tensor: same frames
    stacked = dict(
        inputs=torch.stack(_collate(cpu)['inputs']),
        data_samples=_collate(cpu)['data_samples'])
    c = DASClsDataPreprocessor(**common)(stacked, False)
    assert torch.allclose(c['inputs'], a['inputs'])


SIZES = [(24, 32), (20, 26)]  # two images of different sizes
CANVAS = (32, 48)


def _sized_seg_samples(sizes=SIZES, policy=None, seed=0, pad=None):
    """Packed mmseg samples of images of the given sizes (frames from the
    pipeline when ``policy`` is given; ``pad``: a pipeline pad after it)."""
    from mmseg.datasets.transforms import PackSegInputs
    rng = np.random.RandomState(seed)
    packed = []
    for h, w in sizes:
        sample = dict(
            img=rng.randint(0, 256, (h, w, 3)).astype(np.uint8),
            gt_seg_map=rng.randint(0, 4, (h, w)).astype(np.uint8),
            img_shape=(h, w))
        if policy is not None:
            sample = DASImageToVideo(policy)(sample)
        if pad is not None:
            packed.append(PackDASSegInputs()(pad(sample)))
        elif policy is None:
            packed.append(PackSegInputs()(sample))
        else:
            packed.append(PackDASSegInputs()(sample))
    return packed


def _unpadded_frames(pre_kwargs, mode, training, sizes):
    """Each image's video made alone, at its own size (no padding)."""
    out = []
    for i, (h, w) in enumerate(sizes):
        pipeline = POLICY if mode == 'pipeline' else None
        packed = [_sized_seg_samples(sizes, policy=pipeline)[i]]
        pre = _make_pre(mode, size=(h, w), **pre_kwargs)
        res = pre(_collate(packed), training)
        out.append((res['inputs'][0], res['data_samples'][0]))
    return out


_CELL = {}


def _make_pre(mode, **kwargs):
    if mode == 'pipeline':
        return DASSegDataPreProcessor(**kwargs)
    if mode == 'policy':
        return DASSegDataPreProcessor(policy=POLICY, **kwargs)
    if 'cell' not in _CELL:
        torch.manual_seed(0)
        _CELL['cell'] = DASCell(
            ops=('identity', 'rotate', 'scale'), num_frames=5,
            magnitudes=dict(rotate=9.0, scale=1.1))
    return DASSegDataPreProcessor(cell=_CELL['cell'], **kwargs)


@pytest.mark.parametrize('mode', ['policy', 'pipeline', 'cell'])
@pytest.mark.parametrize('training', [True, False])
def test_padded_frames_are_the_unpadded_frames_padded(mode, training):
    """Each image turns about its own centre, not the padded canvas's."""
    common = dict(mean=MEAN, std=STD, bgr_to_rgb=True, pad_val=0)
    # mmseg tests batches of one size, padded only with a test_cfg
    sizes = SIZES if training else SIZES[:1] * 2
    alone = _unpadded_frames(common, mode, training, sizes)
    pipeline = POLICY if mode == 'pipeline' else None
    if training:
        pre = _make_pre(mode, size=CANVAS, **common)
    else:
        pre = _make_pre(mode, test_cfg=dict(size=CANVAS), **common)
    out = pre(_collate(_sized_seg_samples(sizes, policy=pipeline)), training)
    assert out['inputs'].shape == (2, 15) + CANVAS
    for i, (h, w) in enumerate(sizes):
        frames, sample = out['inputs'][i], out['data_samples'][i]
        ref_frames, ref_sample = alone[i]
        assert torch.allclose(frames[:, :h, :w], ref_frames, atol=1e-4)
        # the padded border is the padding, in every frame
        assert (frames[:, h:] == 0).all() and (frames[:, :, w:] == 0).all()
        assert torch.allclose(sample.das_matrices, ref_sample.das_matrices)
        assert sample.das_image_box == (0, 0, w, h)
        assert sample.das_input_shape == CANVAS
        assert ref_sample.das_input_shape == (h, w)
    # the maps depend on each image's aspect ratio (rotation)
    if mode != 'cell' and training:
        a, b = (s.das_matrices for s in out['data_samples'])
        assert not torch.allclose(a, b)


def test_cls_padded_frames_are_the_unpadded_frames_padded():
    from mmpretrain.datasets.transforms import PackInputs
    rng = np.random.RandomState(0)
    packed = [
        PackInputs()(dict(img=rng.randint(0, 256, (h, w, 3)).astype(
            np.uint8), gt_label=0, img_shape=(h, w))) for h, w in SIZES
    ]
    common = dict(policy=POLICY, mean=MEAN, std=STD, to_rgb=True)
    out = DASClsDataPreprocessor(pad_size_divisor=16, **common)(
        _collate(packed), True)
    assert out['inputs'].shape == (2, 15, 32, 32)
    for i, (h, w) in enumerate(SIZES):
        alone = DASClsDataPreprocessor(**common)(_collate(packed[i:i + 1]))
        assert torch.allclose(out['inputs'][i, :, :h, :w],
                              alone['inputs'][0], atol=1e-4)
        assert torch.allclose(out['data_samples'][i].das_matrices,
                              alone['data_samples'][0].das_matrices)
        assert out['data_samples'][i].das_image_box == (0, 0, w, h)


def test_pipeline_and_device_frames_agree_when_padded():
    common = dict(mean=MEAN, std=STD, bgr_to_rgb=True, size_divisor=16)
    a = DASSegDataPreProcessor(**common)(
        _collate(_sized_seg_samples(policy=POLICY)), True)
    b = DASSegDataPreProcessor(policy=POLICY, **common)(
        _collate(_sized_seg_samples()), True)
    assert a['inputs'].shape == b['inputs'].shape == (2, 15, 32, 32)
    assert torch.allclose(a['inputs'], b['inputs'], atol=1e-4)
    for sa, sb in zip(a['data_samples'], b['data_samples']):
        assert torch.allclose(sa.das_matrices, sb.das_matrices)
        assert sa.das_image_box == sb.das_image_box
        assert sa.das_input_shape == sb.das_input_shape == (32, 32)


def test_cell_mode_reaches_alpha():
    torch.manual_seed(0)
    _, dev_batch = _seg_batches()
    pre = DASSegDataPreProcessor(
        cell=dict(type='DASCell', num_frames=4), mean=MEAN, std=STD,
        size=(H, W))
    assert isinstance(pre.cell, DASCell)
    assert 'cell.alphas' in dict(pre.named_parameters())
    out = pre(dev_batch, True)
    assert out['inputs'].shape == (2, 12, H, W)
    assert out['data_samples'][0].das_matrices.shape == (4, 3, 3)
    assert out['data_samples'][0].das_reference_frame == 2
    out['inputs'].pow(2).mean().backward()
    assert pre.cell.alphas.grad.abs().sum() > 0


@pytest.mark.parametrize('profile, reference', [('pingpong', 2),
                                                ('symmetric', 2),
                                                ('forward', 0)])
def test_cell_profiles_and_reference_frame(profile, reference):
    _, dev_batch = _seg_batches()
    cell = DASCell(ops=('rotate', ), num_frames=5, profile=profile)
    out = DASSegDataPreProcessor(cell=cell, mean=MEAN, std=STD)(dev_batch)
    assert out['data_samples'][0].das_reference_frame == reference
    frames = out['inputs'][0].view(5, 3, H, W)
    mats = out['data_samples'][0].das_matrices
    assert torch.equal(mats[reference], torch.eye(3))
    if profile == 'pingpong':  # frames m - d and m + d are the same
        assert torch.equal(frames[1], frames[3])
        assert torch.equal(mats[0], mats[4])
    else:
        assert not torch.allclose(frames[1], frames[3], atol=1e-2)


@pytest.mark.parametrize('scope', ['mmseg', 'mmpretrain'])
def test_builds_through_the_registry(scope):
    import importlib
    init_default_scope(scope)
    models = importlib.import_module(f'{scope}.registry').MODELS
    name = ('DASSegDataPreProcessor'
            if scope == 'mmseg' else 'DASClsDataPreprocessor')
    pre = models.build(dict(type=name, policy=POLICY, mean=MEAN, std=STD))
    assert type(pre).__name__ == name and pre.num_frames == 5
    pre = models.build(
        dict(type=name, cell=dict(type='DASCell', num_frames=3)))
    assert isinstance(pre.cell, DASCell)
    with pytest.raises(ValueError, match=rf"{name}.policy.transforms\[0\]."
                       r"magnitude: magnitude 3.0 of op 'scale'"):
        models.build(
            dict(type=name,
                 policy=dict(transforms=[dict(op='scale', magnitude=3.0)])))


def test_config_errors():
    with pytest.raises(ValueError, match='either `policy`.*or `cell`'):
        DASSegDataPreProcessor(policy=POLICY, cell=dict(type='DASCell'))
    with pytest.raises(ValueError, match='num_frames: 4 differs'):
        DASSegDataPreProcessor(policy=POLICY, num_frames=4)
    # pipeline mode without the DAS transform / metainfo
    _, dev_batch = _seg_batches()
    pre = DASSegDataPreProcessor(mean=MEAN, std=STD, size=(H, W))
    with pytest.raises(KeyError, match='no `das_matrices`.*PackDASSegInputs'):
        pre(dev_batch, True)
    cpu_batch, _ = _seg_batches()
    with pytest.raises(ValueError, match='num_frames: 8, but the pipeline '
                       'made 5'):
        DASSegDataPreProcessor(mean=MEAN, std=STD, num_frames=8)(cpu_batch)


def test_stack_and_unstack_frames():
    frames = torch.rand(2, 4, 3, 5, 6)
    stacked = stack_frames(frames)
    assert stacked.shape == (2, 12, 5, 6)
    assert torch.equal(stacked[1, 3:6], frames[1, 1])
    flat = unstack_frames(stacked, 4)
    assert flat.shape == (8, 3, 5, 6)
    assert torch.equal(flat[4 + 2], frames[1, 2])
    with pytest.raises(ValueError, match='12 input channels cannot hold num_frames=5'):
        unstack_frames(stacked, 5)


# ---- issue 21.7: padding done in the pipeline ------------------------------
def _padded_in_pipeline(pad_type, sizes=SIZES, policy=None, seed=0):
    """Samples padded to CANVAS by a pipeline pad (mmseg's VOC pipeline pads
    each crop with Pad(size=crop_size)); frames from the pipeline when
    ``policy`` is given (DASImageToVideo, then the pad)."""
    from mmdas.registry import TRANSFORMS
    init_default_scope('mmseg')
    pad = TRANSFORMS.build(dict(type=pad_type, size=CANVAS[::-1]))
    return _sized_seg_samples(sizes, policy, seed, pad=pad)


@pytest.mark.parametrize('mode', ['policy', 'pipeline'])
def test_pipeline_padding_is_not_image(mode):
    """DASPad (mmcv's Pad arguments) records the image's size: frames turn
    about each image's own centre and the box excludes the padding, exactly
    as when the data preprocessor pads. A plain Pad is refused by name."""
    common = dict(mean=MEAN, std=STD, bgr_to_rgb=True, pad_val=0,
                  size=CANVAS)
    pipeline = POLICY if mode == 'pipeline' else None
    ref = _make_pre(mode, **common)(
        _collate(_sized_seg_samples(policy=pipeline)), True)
    out = _make_pre(mode, **common)(
        _collate(_padded_in_pipeline('DASPad', policy=pipeline)), True)
    assert out['inputs'].shape == ref['inputs'].shape == (2, 15) + CANVAS
    for i, (h, w) in enumerate(SIZES):
        sample, ref_sample = out['data_samples'][i], ref['data_samples'][i]
        assert sample.das_image_box == (0, 0, w, h)
        assert torch.allclose(sample.das_matrices, ref_sample.das_matrices)
        assert torch.allclose(out['inputs'][i, :, :h, :w],
                              ref['inputs'][i, :, :h, :w], atol=1e-4)
    if mode == 'policy':
        with pytest.raises(ValueError, match=r"pad_shape.*DASPad"):
            _make_pre(mode, **common)(
                _collate(_padded_in_pipeline('Pad')), True)
    # (a plain Pad cannot pad a video: OpenCV pads at most 4 channels; the
    # config check refuses it, test_config_check_names_pad_...)
    # padding before DASImageToVideo would turn frames about the canvas
    from mmdas.datasets.transforms import DASPad
    padded = DASPad(size=CANVAS[::-1])(
        dict(img=np.zeros((20, 26, 3), np.uint8), img_shape=(20, 26)))
    with pytest.raises(ValueError, match='Pad after DASImageToVideo'):
        DASImageToVideo(POLICY)(padded)


# ---- issue 21.6: a geometric transform after DASImageToVideo ---------------
@pytest.mark.parametrize('later, match', [
    (dict(type='RandomFlip', prob=1.0), r'flip False \(None\) -> True '
     r'\(horizontal\) \(a RandomFlip'),
    (dict(type='Resize', scale=(16, 12)), r'size \(24, 32\) -> \(12, 16\)'),
])
def test_stale_matrices_after_a_later_geometric_transform_are_refused(
        later, match):
    """A flip (or a resize) after DASImageToVideo used to leave the
    das_matrices stale silently: the inverse warp misaligned."""
    from mmdas.registry import TRANSFORMS
    init_default_scope('mmseg')
    after = TRANSFORMS.build(later)
    img, seg = _images(1)[0]
    sample = DASImageToVideo(POLICY)(
        dict(img=img, gt_seg_map=seg, img_shape=(H, W)))
    assert sample['das_matrices_for'] == dict(
        img_shape=(H, W), flip=False, flip_direction=None)
    stale = PackDASSegInputs()(after(dict(sample)))
    pre = DASSegDataPreProcessor(mean=MEAN, std=STD, size=(H, W))
    with pytest.raises(ValueError, match=match):
        pre(_collate([stale]), True)
    # a flip before DASImageToVideo is recorded, so it is fine
    flipped = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0))(
        dict(img=img, gt_seg_map=seg, img_shape=(H, W)))
    ok = PackDASSegInputs()(DASImageToVideo(POLICY)(flipped))
    assert ok['data_samples'].metainfo['das_matrices_for']['flip'] is True
    pre(_collate([ok]), True)


def test_config_check_names_pad_and_late_geometric_transforms():
    """tools/train.py and tools/test.py refuse both before building."""
    from mmengine.config import Config
    from mmdas.utils import check_das_pipelines
    das = dict(type='DASImageToVideo', policy=POLICY)
    base = dict(model=dict(data_preprocessor=dict(
        type='DASSegDataPreProcessor')))

    def cfg(pipeline, **extra):
        return Config(dict(base, train_dataloader=dict(dataset=dict(
            type='X', pipeline=pipeline)), **extra))

    check_das_pipelines(cfg([dict(type='RandomFlip'), das,
                             dict(type='DASPad', size=(8, 8)),
                             dict(type='PackDASSegInputs')]))
    with pytest.raises(ValueError, match=r'train_dataloader\.dataset\.'
                       r"pipeline\[1\]: type='Pad'.*DASPad"):
        check_das_pipelines(cfg([das, dict(type='Pad', size=(8, 8))]))
    with pytest.raises(ValueError, match=r'pipeline\[2\]: RandomFlip after '
                       r'DASImageToVideo \(train_dataloader\.dataset\.'
                       r'pipeline\[1\]\)'):
        check_das_pipelines(cfg([dict(type='Resize'), das,
                                 dict(type='RandomFlip', prob=0.5)]))
    with pytest.raises(ValueError, match=r'tta_pipeline\[1\]: TestTimeAug'):
        check_das_pipelines(cfg([], tta_pipeline=[das, dict(
            type='TestTimeAug', transforms=[[dict(type='RandomFlip')]])]))
    # the shipped VOC configs pad with DASPad and pass
    from mmdas.utils import check_config_types
    for name in ('das_deeplabv3plus_voc12aug', 'das_search_deeplabv3plus_'
                 'voc12aug'):
        voc = Config.fromfile(f'configs/{name}.py')
        check_config_types(voc)
        types = [t['type'] for t in
                 voc.train_dataloader.dataset.datasets[0].pipeline]
        assert 'DASPad' in types and 'Pad' not in types
