"""mmdas.geometry: the op maps move pixels by the documented amounts."""
import math

import pytest
import torch

import mmdas  # noqa: F401
from mmdas import geometry as G


def _policy(pairs, t=7, h=30, w=40, profile='symmetric'):
    return G.policy_matrices(pairs, G.frame_offsets(t, profile), h, w)


def _centroid(img):
    """(x, y) centre of mass of a [H, W] map, in pixel-centre coords."""
    h, w = img.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype),
        indexing='ij')
    total = img.sum()
    return torch.stack([(img * xs).sum() / total, (img * ys).sum() / total])


def _blob(h, w, x, y, sigma=1.5):
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64),
        torch.arange(w, dtype=torch.float64),
        indexing='ij')
    return torch.exp(-((xs - x)**2 + (ys - y)**2) / (2 * sigma**2))


def _apply(mat_pix, x, y):
    p = mat_pix.double() @ torch.tensor([x, y, 1.0], dtype=torch.float64)
    return p[:2]


@pytest.mark.parametrize('hw', [(30, 40), (17, 23)])
def test_middle_frame_is_the_input_exactly(hw):
    h, w = hw
    mats = _policy([('rotate', 7.0), ('translate_x', 0.03), ('scale', 1.1),
                    ('shear_y', 0.1)], t=8, h=h, w=w)
    assert torch.equal(mats[4], torch.eye(3))
    img = torch.rand(8, 3, h, w)
    frames = G.warp(img, mats)
    assert torch.equal(frames[4], img[4])
    assert not torch.allclose(frames[3], img[3], atol=1e-3)
    assert not torch.allclose(frames[5], img[5], atol=1e-3)


def test_forward_profile_starts_at_the_image():
    offsets = G.frame_offsets(5, 'forward')
    assert offsets.tolist() == [0, 1, 2, 3, 4]
    assert G.frame_offsets(8).tolist() == [-4, -3, -2, -1, 0, 1, 2, 3]
    assert G.reference_frame(8) == 4 and G.reference_frame(8, 'forward') == 0
    with pytest.raises(ValueError, match="unknown frame profile 'ping'"):
        G.frame_offsets(4, 'ping')


def test_translate_x_moves_a_marked_pixel_by_d_S_W():
    h, w, s = 12, 40, 0.05  # 2 pixels per step
    img = torch.zeros(7, 1, h, w)
    img[:, 0, 5, 20] = 1.0
    frames = G.warp(img, _policy([('translate_x', s)], t=7, h=h, w=w))
    for t in range(7):
        d = t - 3
        flat = int(frames[t, 0].argmax())
        assert divmod(flat, w) == (5, 20 + round(d * s * w))
        assert frames[t, 0].max().item() == pytest.approx(1.0, abs=1e-5)


def test_translate_y_moves_down_by_d_S_H():
    h, w, s = 40, 12, 0.1  # 4 pixels per step
    img = torch.zeros(5, 1, h, w)
    img[:, 0, 20, 6] = 1.0
    frames = G.warp(img, _policy([('translate_y', s)], t=5, h=h, w=w))
    for t in range(5):
        flat = int(frames[t, 0].argmax())
        assert divmod(flat, w) == (20 + 4 * (t - 2), 6)


@pytest.mark.parametrize('hw', [(30, 40), (25, 25)])
def test_rotate_turns_points_about_the_centre(hw):
    h, w = hw
    s = 6.0
    mats = G.pixel_matrix(_policy([('rotate', s)], t=7, h=h, w=w), h, w)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    for t in range(7):
        d = t - 3
        for x, y in [(cx + 8, cy), (cx + 3, cy - 5)]:
            nx, ny = _apply(mats[t], x, y).tolist()
            before = math.atan2(-(y - cy), x - cx)  # y down: flip for CCW
            after = math.atan2(-(ny - cy), nx - cx)
            turned = math.degrees(after - before)
            assert turned == pytest.approx(d * s, abs=1e-3)
            assert math.hypot(nx - cx, ny - cy) == pytest.approx(
                math.hypot(x - cx, y - cy), abs=1e-3)
    # and the image content follows the matrix: a blob's centre of mass
    img = _blob(h, w, cx + 8, cy).float()[None, None].repeat(7, 1, 1, 1)
    frames = G.warp(img, _policy([('rotate', s)], t=7, h=h, w=w))
    for t in (0, 6):
        want = _apply(mats[t], cx + 8, cy)
        got = _centroid(frames[t, 0].double())
        assert torch.allclose(got, want, atol=0.1)


def test_scale_maps_distances_from_the_centre_by_S_pow_d():
    h, w, s = 32, 48, 1.2
    mats = G.pixel_matrix(_policy([('scale', s)], t=5, h=h, w=w), h, w)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    for t in range(5):
        d = t - 2
        nx, ny = _apply(mats[t], cx + 6, cy - 4).tolist()
        assert nx - cx == pytest.approx(6 * s**d, abs=1e-4)
        assert ny - cy == pytest.approx(-4 * s**d, abs=1e-4)
    img = _blob(h, w, cx + 6, cy - 4).float()[None, None].repeat(5, 1, 1, 1)
    frames = G.warp(img, _policy([('scale', s)], t=5, h=h, w=w))
    got = _centroid(frames[4, 0].double())
    assert torch.allclose(
        got, torch.tensor([cx + 6 * s**2, cy - 4 * s**2],
                          dtype=torch.float64), atol=0.1)


def test_policy_composes_in_order():
    off = G.frame_offsets(5)
    t = G.op_matrices('translate_x', 0.1, off, 20, 30)
    r = G.op_matrices('rotate', 10.0, off, 20, 30)
    both = G.policy_matrices([('translate_x', 0.1), ('rotate', 10.0)], off,
                             20, 30)
    assert torch.allclose(both, r @ t, atol=1e-6)
    assert not torch.allclose(both, t @ r, atol=1e-3)


def test_label_warp_never_invents_values():
    torch.manual_seed(0)
    h, w = 29, 37
    values = torch.tensor([3, 7, 9], dtype=torch.uint8)
    labels = values[torch.randint(0, 3, (8, 1, h, w))]
    mats = _policy([('rotate', 9.0), ('scale', 1.13), ('translate_x', 0.037)],
                   t=8, h=h, w=w)
    out = G.warp(labels, mats, mode='nearest', fill=255)
    assert out.dtype == torch.uint8
    assert set(out.unique().tolist()) == {3, 7, 9, 255}
    assert torch.equal(out[4], labels[4])
    # nearest neighbour: every kept value is one of the source's values at
    # the rounded source position (spot check: no blending across labels)
    assert (out[0] == 255).float().mean() > 0.05


def test_inverse_warp_restores_the_valid_region():
    h, w = 48, 64
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32),
        torch.arange(w, dtype=torch.float32),
        indexing='ij')
    # smooth image, so bilinear interpolation twice costs little
    img = 0.5 + 0.25 * torch.sin(xs / 5) + 0.25 * torch.cos(ys / 7)
    img = img[None, None].repeat(7, 2, 1, 1)
    mats = _policy([('rotate', 4.0), ('translate_x', 0.04), ('scale', 1.05)],
                   t=7, h=h, w=w)
    frames = G.warp(img, mats)
    back, valid = G.inverse_warp(frames, mats)
    # stay a pixel away from the frame's border and the image's border,
    # where grid_sample's zero padding blends in
    inner = -torch.nn.functional.max_pool2d(
        -valid.float(), 3, stride=1, padding=1) > 0.5
    inner[..., :2, :] = inner[..., -2:, :] = False
    inner[..., :2] = inner[..., -2:] = False
    assert inner[0].float().mean() > 0.4
    err = (back - img).abs() * inner
    assert err.max() < 0.01
    # it is really the inverse: warping forward again is far off
    wrong = (G.warp(frames, mats) - img).abs() * inner
    assert wrong[0].max() > 0.2


def test_inverse_warp_at_lower_resolution():
    """One normalised matrix serves the image and a stride-4 map."""
    h, w = 64, 96
    mats = _policy([('translate_x', 0.125)], t=3, h=h, w=w)
    small = torch.zeros(3, 1, h // 4, w // 4)
    small[:, 0, 8, 12] = 1.0
    frames = G.warp(small, mats)  # 0.125 * 24 = 3 pixels per step
    assert divmod(int(frames[2, 0].argmax()), w // 4) == (8, 15)
    back, valid = G.inverse_warp(frames, mats)
    assert divmod(int(back[2, 0].argmax()), w // 4) == (8, 12)
    assert not valid[2, 0, :, -1].any() and valid[2, 0, :, 0].all()


def test_float64_is_kept_for_gradient_checks():
    mag = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    mats = G.op_matrices('rotate', mag, G.frame_offsets(3), 10, 10)
    assert mats.dtype == torch.float64
    out = G.warp(torch.rand(3, 1, 10, 10, dtype=torch.float64), mats)
    assert out.dtype == torch.float64
    out.sum().backward()
    assert mag.grad is not None and mag.grad != 0


def test_check_op_names_field_value_and_choices():
    with pytest.raises(ValueError) as err:
        G.check_op('rotat', 3.0, 'x.op')
    assert "x.op: unknown DAS op 'rotat'" in str(err.value)
    assert "'rotate'" in str(err.value)
    with pytest.raises(ValueError) as err:
        G.check_op('scale', 0.0, 'x.op', 'x.magnitude')
    assert 'x.magnitude: magnitude 0.0' in str(err.value)
    assert '(0.0, 2.0]' in str(err.value)
    with pytest.raises(ValueError, match='not a number'):
        G.check_op('rotate', 'big', 'x.op')
    G.check_op('scale', 2.0)
    G.check_op('identity', 0)
