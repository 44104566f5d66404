"""DASImageToVideo: the CPU pipeline transform."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

import mmdas  # noqa: F401
from mmdas import geometry as G
from mmdas.datasets.transforms import (DAS_CLS_META_KEYS, DAS_SEG_META_KEYS,
                                       DASImageToVideo, PackDASInputs,
                                       PackDASSegInputs)

POLICY = dict(
    transforms=[
        dict(op='translate_x', magnitude=0.1),
        dict(op='rotate', magnitude=4.0)
    ],
    num_frames=5)


def _sample(h=20, w=30, seed=0):
    rng = np.random.RandomState(seed)
    return dict(
        img=rng.randint(0, 256, (h, w, 3)).astype(np.uint8),
        gt_seg_map=rng.choice([1, 4, 6], (h, w)).astype(np.uint8),
        img_shape=(h, w))


def test_frames_are_stacked_frame_major_and_match_the_geometry():
    results = _sample()
    img, seg = results['img'].copy(), results['gt_seg_map'].copy()
    out = DASImageToVideo(POLICY)(results)
    assert out['img'].shape == (20, 30, 15) and out['img'].dtype == np.float32
    assert out['img'].flags.c_contiguous
    mats = torch.from_numpy(out['das_matrices'])
    assert mats.shape == (5, 3, 3) and out['das_matrices'].dtype == np.float32
    frames = G.warp(
        torch.from_numpy(img).float().permute(2, 0, 1)[None].repeat(5, 1, 1,
                                                                   1), mats)
    for t in range(5):
        got = out['img'][..., 3 * t:3 * t + 3]
        np.testing.assert_allclose(
            got, frames[t].permute(1, 2, 0).numpy(), atol=1e-4)
    # the middle frame is the image, exactly
    np.testing.assert_array_equal(out['img'][..., 6:9], img.astype(np.float32))
    assert out['das_num_frames'] == 5 and out['das_reference_frame'] == 2
    # the fusion target stays the original label map
    np.testing.assert_array_equal(out['gt_seg_map'], seg)


def test_marked_pixel_moves_by_d_S_W():
    img = np.zeros((10, 40, 3), np.uint8)
    img[4, 20] = (10, 200, 90)
    policy = dict(transforms=[dict(op='translate_x', magnitude=0.05)],
                  num_frames=5)
    out = DASImageToVideo(policy)(dict(img=img))['img']
    for t in range(5):
        green = out[..., 3 * t + 1]
        assert np.unravel_index(green.argmax(), green.shape) == \
            (4, 20 + 2 * (t - 2))
        assert green.max() == pytest.approx(200, abs=1e-3)


def test_label_frames_keep_only_input_values_and_ignore_index():
    out = DASImageToVideo(POLICY, ignore_index=255)(_sample())
    frames = out['gt_seg_map_frames']
    assert frames.shape == (5, 20, 30) and frames.dtype == np.uint8
    assert set(np.unique(frames)) == {1, 4, 6, 255}
    np.testing.assert_array_equal(frames[2], out['gt_seg_map'])
    assert (frames[0] == 255).mean() > 0.1


def test_grey_image_and_forward_profile():
    img = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    policy = dict(transforms=[dict(op='scale', magnitude=1.2)],
                  num_frames=3, profile='forward')
    out = DASImageToVideo(policy)(dict(img=img))
    assert out['img'].shape == (12, 16, 3)
    np.testing.assert_array_equal(out['img'][..., 0], img)
    assert out['das_reference_frame'] == 0


def test_pingpong_profile_frames_go_out_and_back():
    """The authors' profile: frames m - d and m + d are the same frame."""
    results = _sample()
    img = results['img'].copy()
    policy = dict(POLICY, profile='pingpong')
    out = DASImageToVideo(policy)(results)
    frames = [out['img'][..., 3 * t:3 * t + 3] for t in range(5)]
    np.testing.assert_array_equal(frames[2], img.astype(np.float32))
    np.testing.assert_array_equal(frames[0], frames[4])
    np.testing.assert_array_equal(frames[1], frames[3])
    assert np.abs(frames[1] - frames[0]).max() > 50
    np.testing.assert_array_equal(out['gt_seg_map_frames'][1],
                                  out['gt_seg_map_frames'][3])
    assert out['das_reference_frame'] == 2
    symmetric = DASImageToVideo(POLICY)(_sample())['img']
    np.testing.assert_array_equal(symmetric[..., 9:12], frames[3])
    assert np.abs(symmetric[..., 3:6] - frames[1]).max() > 50


def test_bad_policy_fails_when_the_transform_is_built():
    with pytest.raises(ValueError, match=r"DASImageToVideo.policy."
                       r"transforms\[0\].op: unknown DAS op 'zoom'"):
        DASImageToVideo(dict(transforms=[dict(op='zoom', magnitude=1.1)]))


@pytest.mark.parametrize('scope', ['mmseg', 'mmpretrain'])
def test_builds_from_both_pipelines(scope):
    import importlib
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').TRANSFORMS
    t = registry.build(dict(type='DASImageToVideo', policy=POLICY))
    assert isinstance(t, DASImageToVideo)
    pack = 'PackDASSegInputs' if scope == 'mmseg' else 'PackDASInputs'
    packer = registry.build(dict(type=pack))
    packed = packer(t(_sample()))
    assert packed['inputs'].shape == (15, 20, 30)
    meta = packed['data_samples'].metainfo
    assert meta['das_matrices'].shape == (5, 3, 3)
    assert meta['das_num_frames'] == 5 and meta['das_reference_frame'] == 2


def test_meta_key_constants_extend_the_stock_defaults():
    from mmpretrain.datasets.transforms import PackInputs
    from mmseg.datasets.transforms import PackSegInputs
    stock = PackSegInputs().meta_keys
    assert DAS_SEG_META_KEYS[:len(stock)] == tuple(stock)
    assert PackDASSegInputs().meta_keys == DAS_SEG_META_KEYS
    assert DAS_CLS_META_KEYS[:7] == PackInputs.DEFAULT_META_KEYS
    assert PackDASInputs().meta_keys == DAS_CLS_META_KEYS
