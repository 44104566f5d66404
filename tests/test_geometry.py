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
    with pytest.raises(ValueError, match="unknown frame profile 'ping'.*"
                       "'pingpong'"):
        G.frame_offsets(4, 'ping')


def test_pingpong_profile_gives_mirror_frames_the_same_transform():
    """The authors' code: frames m - d and m + d are the same frame."""
    assert G.frame_offsets(8, 'pingpong').tolist() == [4, 3, 2, 1, 0, 1, 2, 3]
    assert G.frame_offsets(5, 'pingpong').tolist() == [2, 1, 0, 1, 2]
    assert G.reference_frame(8, 'pingpong') == 4
    pairs = [('rotate', 7.0), ('translate_x', 0.03)]
    mats = _policy(pairs, t=7, profile='pingpong')
    sym = _policy(pairs, t=7, profile='symmetric')
    assert torch.equal(mats[3], torch.eye(3))
    for d in (1, 2, 3):
        assert torch.equal(mats[3 - d], mats[3 + d])
        assert torch.equal(mats[3 + d], sym[3 + d])
        assert not torch.allclose(mats[3 - d], sym[3 - d], atol=1e-3)
    # symmetric: opposite transforms, so frame m - d undoes frame m + d
    rot = G.op_matrices('rotate', 7.0, G.frame_offsets(7), 30, 40)
    assert torch.allclose(rot[1] @ rot[5], torch.eye(3), atol=1e-6)
    img = torch.rand(7, 1, 30, 40)
    img[:] = img[:1]
    frames = G.warp(img, mats)
    assert torch.equal(frames[1], frames[5])


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


def test_label_warp_is_nearest_neighbour():
    torch.manual_seed(0)
    h, w = 29, 37
    values = torch.tensor([3, 7, 9], dtype=torch.uint8)
    labels = values[torch.randint(0, 3, (1, 1, h, w))].repeat(8, 1, 1, 1)
    mats = _policy([('rotate', 9.0), ('scale', 1.13), ('translate_x', 0.037)],
                   t=8, h=h, w=w)
    out = G.warp(labels, mats, mode='nearest', fill=255)
    assert out.dtype == torch.uint8
    assert set(out.unique().tolist()) == {3, 7, 9, 255}
    assert torch.equal(out[4], labels[4])
    # every output pixel holds the label of the source pixel nearest to
    # where the inverse map sends it, or 255 if that lies outside the image
    inv = torch.linalg.inv(G.pixel_matrix(mats.double(), h, w))
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64),
        torch.arange(w, dtype=torch.float64),
        indexing='ij')
    points = torch.stack([xs, ys, torch.ones_like(xs)]).reshape(3, -1)
    checked = outside = 0
    for t in (0, 2, 7):
        src = (inv[t] @ points)[:2]  # (x, y) source pixel coordinates
        nearest = src.round()
        # skip ties, where float rounding may pick either neighbour
        clear = ((src - src.floor() - 0.5).abs() > 1e-3).all(0)
        inside = ((nearest[0] >= 0) & (nearest[0] < w) & (nearest[1] >= 0)
                  & (nearest[1] < h))
        got = out[t, 0].reshape(-1)
        idx = (nearest[1].clamp(0, h - 1) * w +
               nearest[0].clamp(0, w - 1)).long()
        want = torch.where(inside, labels[t, 0].reshape(-1)[idx],
                           torch.tensor(255, dtype=torch.uint8))
        assert torch.equal(got[clear], want[clear])
        assert clear.float().mean() > 0.95
        checked += int(clear.sum())
        outside += int((~inside).sum())
    assert checked > 3000 and outside > 50


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


def _smooth(h, w):
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32),
        torch.arange(w, dtype=torch.float32),
        indexing='ij')
    return 0.5 + 0.25 * torch.sin(xs / 9) + 0.25 * torch.cos(ys / 11)


def test_one_matrix_serves_a_stride_4_map():
    """Frames made at full resolution; their stride-4 maps (an avg-pooled
    "logit map") inverse-warp with the same matrices to the image's own
    stride-4 map."""
    h, w = 64, 96
    img = _smooth(h, w)[None, None].repeat(5, 1, 1, 1)
    mats = _policy([('rotate', 6.0), ('scale', 1.06), ('translate_y', 0.03)],
                   t=5, h=h, w=w)
    frames = G.warp(img, mats)  # full resolution
    pool = torch.nn.functional.avg_pool2d
    known = pool(img[:1], 4)  # the image's stride-4 map, [1, 1, 16, 24]
    back, valid = G.inverse_warp(pool(frames, 4), mats)
    assert back.shape == (5, 1, 16, 24)
    assert torch.equal(back[2], known[0])  # the reference frame
    # the frames' maps really move: unwarped, they are far from the image's
    assert (pool(frames, 4)[0] - known[0]).abs().max() > 0.2
    for t in (0, 1, 3, 4):
        assert valid[t].float().mean() > 0.6
        err = (back[t] - known[0]).abs()[valid[t]]
        assert err.max() < 0.02, (t, err.max())
    # the wrong map (the inverse) is far off
    wrong, _ = G.inverse_warp(pool(frames, 4), torch.linalg.inv(mats))
    assert (wrong[0] - known[0]).abs()[valid[0]].max() > 0.1


def test_inverse_warp_valid_mask_has_no_half_pixel_border_band():
    """Where grid_sample blends zeros in, a pixel is not valid."""
    h, w = 8, 12
    image = torch.full((3, 2, h, w), 200.0)
    # a third of a pixel per step: frame 0 moves left, frame 2 right
    mats = _policy([('translate_x', 1 / (3 * w))], t=3, h=h, w=w)
    frames = G.warp(image, mats)
    # the frame generator blends black fill into one edge column
    assert frames[0, 0, 0, -1].item() == pytest.approx(200 * 2 / 3, abs=1e-3)
    back, valid = G.inverse_warp(frames, mats)
    assert valid[1].all()
    for t, band, fill in ((0, 0, -1), (2, -1, 0)):
        # the half-pixel band: the frame border, blended with zero padding
        assert back[t, 0, 0, band].item() == pytest.approx(200 * 2 / 3,
                                                           abs=1e-2)
        # and the column that reads the frame's black-blended edge
        assert back[t, 0, 0, fill].item() < 199
        assert not valid[t, 0, :, band].any()
        assert not valid[t, 0, :, fill].any()
        assert valid[t, 0, :, 1:-1].all()
        assert torch.allclose(back[t][valid[t].expand(2, -1, -1)],
                              torch.tensor(200.0))
    # a region: the image is 9 columns wide, then 3 of padding; frames are
    # the image's frames cut to the region
    region = torch.ones(3, 1, h, w)
    region[..., 9:] = 0
    _, valid = G.inverse_warp(frames * region, mats, region=region)
    assert valid[1, 0, :, :9].all() and not valid[..., 9:].any()
    # column 8 reads frame 0's black-blended column 8, frame 2's padding
    assert valid[0, 0, :, 1:8].all() and not valid[0, 0, :, 8].any()
    assert not valid[2, 0, :, 8].any()


def test_maps_in_view_are_the_image_maps_on_a_canvas_and_a_crop():
    """A padded canvas and a crop see the image's motion about its centre."""
    h, w, canvas = 30, 40, (48, 64)
    mats = _policy([('rotate', 8.0), ('scale', 1.1)], t=3, h=h, w=w)
    image_box, canvas_box = (0, 0, w, h), (0, 0, canvas[1], canvas[0])
    on_canvas = G.maps_in_view(mats, [image_box], [canvas_box])[0]
    # in canvas pixels, the map turns about the image centre, not the
    # canvas centre, and agrees with the image's own map in its pixels
    pix_img = G.pixel_matrix(mats, h, w)
    pix_canvas = G.pixel_matrix(on_canvas, *canvas)
    assert torch.allclose(pix_canvas, pix_img, atol=1e-4)
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2, 1.0])
    assert torch.allclose(pix_canvas[0] @ centre, centre, atol=1e-4)
    # exact identities stay exact
    assert torch.equal(on_canvas[1], torch.eye(3))
    # a crop (x0, y0) = (8, 4): the same map, shifted by the crop offset
    crop = (8, 4, 40, 28)
    in_crop = G.maps_in_view(mats, [image_box], [crop])[0]
    shift = torch.tensor([[1.0, 0, 8], [0, 1, 4], [0, 0, 1]])
    assert torch.allclose(
        G.pixel_matrix(in_crop, 24, 32),
        torch.linalg.inv(shift) @ pix_img @ shift, atol=1e-4)
    mask = G.box_mask([image_box], [crop], (6, 8))  # a stride-4 crop map
    assert mask.shape == (1, 1, 6, 8)
    assert mask.all()  # the crop lies inside the image
    mask = G.box_mask([image_box], [canvas_box], (12, 16))
    # stride 4: 30 rows x 40 columns touch 8 x 10 pixels
    assert mask[0, 0, :8, :10].all() and mask[0, 0].sum() == 8 * 10


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
    assert '[0.5, 2.0]' in str(err.value)
    with pytest.raises(ValueError, match='not a number'):
        G.check_op('rotate', 'big', 'x.op')
    G.check_op('scale', 2.0)
    G.check_op('identity', 0)


@pytest.mark.parametrize('fine,coarse', [((48, 64), (12, 16)),
                                         ((37, 53), (10, 14)),
                                         ((33, 17), (9, 5))])
def test_validity_pooling_equals_adaptive_pooling(fine, coarse):
    """The exportable pooling of the inverse warp's validity (cumulative
    sums and gathers) has exactly adaptive pooling's bins, also where the
    sizes do not divide."""
    import torch.nn.functional as F
    from mmdas.geometry import _pool_all, _pool_any
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand((3, 1) + fine, generator=gen) > 0.1
    every = -F.adaptive_max_pool2d(-mask.float(), coarse) > 0.5
    some = F.adaptive_max_pool2d(mask.float(), coarse) > 0
    assert torch.equal(_pool_all(mask, coarse), every)
    assert torch.equal(_pool_any(mask, coarse), some)
    assert not every.all() and some.any()  # both outcomes occur
