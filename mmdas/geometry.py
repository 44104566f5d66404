"""The one place where DAS transforms become geometry.

Every DAS op is an affine map about the image centre. This module turns an op,
its per-step magnitude and the frames' step offsets into 3x3 matrices, and
warps with them. The same matrices drive the CPU pipeline transform, the
batched on-device frame generation, the differentiable search cell and the
inverse warp of the fusion head.

Conventions:

* Matrices are **forward maps in normalised coordinates**: they send a point
  of the image to where it appears in the frame. Normalised coordinates are
  those of :func:`torch.nn.functional.affine_grid` with
  ``align_corners=False``: ``x = -1`` is the left edge and ``x = 1`` the right
  edge of the image, ``y = -1`` the top. They do not depend on resolution, so
  one matrix serves an image and its stride-4 logit map alike.
* A map is relative to **its own image**, not to the padded canvas a batch
  puts it on, nor to a crop of that canvas: the image defines the motion.
  :func:`maps_in_view` expresses it on a canvas or a crop, for the frame
  generators and the inverse warp alike.
* Ops are defined in centred *pixel* units, then conjugated to normalised
  units, so that a rotation is a true rotation on non-square images.
* A frame at step offset ``d`` applies the op with magnitude ``d * S``
  (``S ** d`` for ``scale``). Positive ``rotate`` turns the content
  counter-clockwise as displayed (y axis pointing down), like torchvision.
"""
import math
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Number = Union[float, int, Tensor]


class OpSpec(NamedTuple):
    """How one DAS op turns ``(magnitude S, step offsets d)`` into a map.

    Attributes:
        build (Callable): ``build(S, d, height, width) -> [T, 3, 3]`` forward
            maps in centred pixel units.
        low (float): Smallest valid magnitude S.
        high (float): Largest valid magnitude S.
        unit (str): What S means, for docs and error messages.
        exclusive_low (bool): Whether ``low`` itself is invalid.
    """
    build: Callable
    low: float
    high: float
    unit: str
    exclusive_low: bool = False


def _eye(offsets: Tensor, dtype) -> Tensor:
    return torch.eye(3, dtype=dtype, device=offsets.device).repeat(
        offsets.numel(), 1, 1)


def _as_tensor(value: Number, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(device=like.device)
    return torch.tensor(float(value), device=like.device)


def _translate(axis: int):

    def build(magnitude, offsets, height, width):
        size = width if axis == 0 else height
        mats = _eye(offsets, magnitude.dtype)
        mats[:, axis, 2] = offsets * magnitude * size
        return mats

    return build


def _scale(magnitude, offsets, height, width):
    factor = magnitude**offsets
    mats = _eye(offsets, magnitude.dtype)
    mats[:, 0, 0] = factor
    mats[:, 1, 1] = factor
    return mats


def _rotate(magnitude, offsets, height, width):
    angle = offsets * magnitude * (math.pi / 180)
    cos, sin = torch.cos(angle), torch.sin(angle)
    mats = _eye(offsets, magnitude.dtype)
    # y points down: counter-clockwise on screen is (x, y) -> (x c + y s, -x s + y c)
    mats[:, 0, 0] = cos
    mats[:, 0, 1] = sin
    mats[:, 1, 0] = -sin
    mats[:, 1, 1] = cos
    return mats


def _shear(axis: int):

    def build(magnitude, offsets, height, width):
        mats = _eye(offsets, magnitude.dtype)
        mats[:, axis, 1 - axis] = offsets * magnitude
        return mats

    return build


def _identity(magnitude, offsets, height, width):
    # keeps the graph connected when S is a learnable tensor
    return _eye(offsets, magnitude.dtype) + 0 * magnitude


#: Every op DAS can search over. Add an op here and it works everywhere.
OPS: Dict[str, OpSpec] = {
    # identity has no magnitude: only 0 (what a left-out magnitude means)
    'identity': OpSpec(_identity, 0.0, 0.0, 'takes no magnitude'),
    'translate_x': OpSpec(_translate(0), -0.5, 0.5,
                          'fraction of the width per step'),
    'translate_y': OpSpec(_translate(1), -0.5, 0.5,
                          'fraction of the height per step'),
    # S**d over up to T-1 steps: below 0.5 frames shrink to nothing (and a
    # tiny S underflows to a singular map); above 2 they are a few pixels
    'scale': OpSpec(_scale, 0.5, 2.0, 'zoom factor per step (S**d)'),
    'rotate': OpSpec(_rotate, -90.0, 90.0, 'degrees per step'),
    'shear_x': OpSpec(_shear(0), -1.0, 1.0, 'x shear per step'),
    'shear_y': OpSpec(_shear(1), -1.0, 1.0, 'y shear per step'),
}


def check_op(op: str,
             magnitude: float,
             field: str = 'op',
             magnitude_field: Optional[str] = None) -> None:
    """Raise a ``ValueError`` naming the field if ``op``/``magnitude`` is bad.

    Args:
        op (str): Op name.
        magnitude (float): Magnitude per step.
        field (str): Config field to name in the message about the op.
        magnitude_field (str, optional): Config field to name in the message
            about the magnitude. Defaults to ``field``.
    """
    magnitude_field = magnitude_field or field
    if not isinstance(op, str) or op not in OPS:
        raise ValueError(f'{field}: unknown DAS op {op!r}; valid ops are '
                         f'{sorted(OPS)}.')
    spec = OPS[op]
    if isinstance(magnitude, Tensor) and magnitude.numel() == 1:
        magnitude = magnitude.item()
    if isinstance(magnitude, bool) or not isinstance(magnitude,
                                                     (int, float)):
        raise ValueError(
            f'{magnitude_field}: magnitude {magnitude!r} of op {op!r} is not '
            f'a number ({spec.unit}).')
    value = float(magnitude)
    if op == 'identity' and value != 0:
        raise ValueError(
            f'{magnitude_field}: op {op!r} takes no magnitude (got '
            f'{magnitude!r}); leave the magnitude out.')
    too_low = value <= spec.low if spec.exclusive_low else value < spec.low
    if too_low or value > spec.high or math.isnan(value):
        bracket = '(' if spec.exclusive_low else '['
        raise ValueError(
            f'{magnitude_field}: magnitude {magnitude!r} of op {op!r} is out '
            f'of range {bracket}{spec.low}, {spec.high}] ({spec.unit}).')


#: Frame profiles: how the step offset ``d`` of each frame is laid out.
PROFILES = ('symmetric', 'pingpong', 'forward')


def frame_offsets(num_frames: int,
                  profile: str = 'symmetric',
                  device=None) -> Tensor:
    """Step offset ``d`` of each frame.

    Args:
        num_frames (int): T.
        profile (str): With ``m = T // 2``:

            - ``'symmetric'``: frame m is the image, frames ``m -+ k`` get
              offsets ``-+k`` (opposite transforms: one continuous motion
              through the image);
            - ``'pingpong'`` (the authors' code): frame m is the image,
              frames ``m -+ k`` both get ``+k`` (the same transform: a video
              that goes out and back);
            - ``'forward'``: frame t gets ``t``, frame 0 is the image.
        device: Device of the result.

    Returns:
        Tensor: ``[T]`` float offsets.
    """
    steps = torch.arange(num_frames, dtype=torch.float32, device=device)
    if profile == 'symmetric':
        return steps - num_frames // 2
    if profile == 'pingpong':
        return (steps - num_frames // 2).abs()
    if profile == 'forward':
        return steps
    raise ValueError(f'profile: unknown frame profile {profile!r}; valid '
                     f'profiles are {list(PROFILES)}.')


def reference_frame(num_frames: int, profile: str = 'symmetric') -> int:
    """Index of the frame that is the unchanged image."""
    return 0 if profile == 'forward' else num_frames // 2


def _centred_to_normalised(height: int, width: int, like: Tensor) -> Tensor:
    """``A`` with ``normalised = A @ centred pixels``."""
    return torch.diag(
        torch.tensor([2.0 / width, 2.0 / height, 1.0],
                     dtype=like.dtype, device=like.device))


def op_matrices(op: str, magnitude: Number, offsets: Tensor, height: int,
                width: int) -> Tensor:
    """Forward maps of one op for every frame.

    Args:
        op (str): A key of :data:`OPS`.
        magnitude (float | Tensor): Per-step magnitude S; a tensor that
            requires grad gives matrices differentiable in S.
        offsets (Tensor): ``[T]`` step offsets, see :func:`frame_offsets`.
        height (int): Image height in pixels.
        width (int): Image width in pixels.

    Returns:
        Tensor: ``[T, 3, 3]`` forward maps in normalised coordinates.
    """
    if op not in OPS:
        check_op(op, 0.0)
    # float64 magnitudes keep float64 (finite-difference checks need it)
    dtype = (magnitude.dtype if isinstance(magnitude, Tensor)
             and magnitude.dtype == torch.float64 else torch.float32)
    offsets = offsets.to(dtype)
    magnitude = _as_tensor(magnitude, offsets).to(dtype)
    centred = OPS[op].build(magnitude, offsets, height, width)
    # D @ M @ D^-1 for diagonal D, written entrywise: the ratio matrix has
    # exact ones on its diagonal, so a zero offset gives an exact identity
    # (a matrix inverse would leave 1 +- 1 ulp and break exact copies).
    scale = torch.diagonal(_centred_to_normalised(height, width, centred))
    return centred * (scale[:, None] / scale[None, :])


def policy_matrices(transforms: Sequence[Tuple[str, Number]],
                    offsets: Tensor, height: int, width: int) -> Tensor:
    """Forward maps of ops composed in order (the first op is applied first).

    Args:
        transforms (Sequence[tuple]): ``(op, magnitude)`` pairs.
        offsets (Tensor): ``[T]`` step offsets.
        height (int): Image height.
        width (int): Image width.

    Returns:
        Tensor: ``[T, 3, 3]`` forward maps.
    """
    mats = _eye(offsets, offsets.dtype if offsets.is_floating_point() else
                torch.float32)
    for op, magnitude in transforms:
        step = op_matrices(op, magnitude, offsets, height, width)
        mats = step @ mats.to(step.dtype)
    return mats


def _as_boxes(boxes, like: Tensor) -> Tensor:
    boxes = torch.as_tensor(boxes, dtype=like.dtype, device=like.device)
    return boxes.reshape(-1, 4)


def box_to_box(src_boxes, dst_boxes) -> Tensor:
    """Affine maps from one box's normalised coordinates to another's.

    A box ``(x0, y0, x1, y1)`` is a rectangle in pixel units of a shared
    frame (edges, so an ``H x W`` canvas is ``(0, 0, W, H)``); its normalised
    coordinates are ``-1`` on its left/top edge and ``1`` on its right/bottom
    edge, as in :func:`torch.nn.functional.affine_grid`.

    Args:
        src_boxes (Tensor | Sequence): ``[B, 4]`` (or ``[4]``) boxes.
        dst_boxes (Tensor | Sequence): ``[B, 4]`` (or ``[4]``) boxes.

    Returns:
        Tensor: ``[B, 3, 3]`` float64 maps sending a point in the normalised
        coordinates of ``src_boxes`` to those of ``dst_boxes``. Equal boxes
        give an exact identity.
    """
    src = _as_boxes(src_boxes, torch.empty(0, dtype=torch.float64))
    dst = _as_boxes(dst_boxes, src)
    src, dst = torch.broadcast_tensors(src, dst)
    mats = torch.zeros(src.shape[0], 3, 3, dtype=src.dtype,
                       device=src.device)
    for axis in (0, 1):
        s0, s1 = src[:, axis], src[:, axis + 2]
        d0, d1 = dst[:, axis], dst[:, axis + 2]
        # x = s0 + (u + 1) (s1 - s0) / 2;  v = 2 (x - d0) / (d1 - d0) - 1
        mats[:, axis, axis] = (s1 - s0) / (d1 - d0)
        mats[:, axis, 2] = (s0 + s1 - d0 - d1) / (d1 - d0)
    mats[:, 2, 2] = 1
    return mats


def maps_in_view(mats: Tensor, image_boxes, view_boxes) -> Tensor:
    """Express frames' forward maps in the coordinates of a view.

    This is how padding and crops enter the geometry, everywhere. A frame's
    map (``das_matrices``) is relative to its own image: the image, not the
    padded canvas, defines the motion. The image lies in ``image_boxes`` of a
    padded canvas, and a network sees the canvas or a crop of it (the view):
    the same map in the view's normalised coordinates is
    ``B^-1 @ M @ B``, with ``B`` the map from view to image coordinates.

    Args:
        mats (Tensor): ``[B, T, 3, 3]`` or ``[T, 3, 3]`` forward maps in the
            image's normalised coordinates.
        image_boxes (Tensor | Sequence): ``[B, 4]`` image boxes in canvas
            pixels (see :func:`box_to_box`).
        view_boxes (Tensor | Sequence): ``[B, 4]`` view boxes, same pixels.

    Returns:
        Tensor: ``[B, T, 3, 3]`` forward maps in the view's normalised
        coordinates. Exact identity maps stay exact identities.
    """
    to_image = box_to_box(view_boxes, image_boxes).to(mats)[:, None]
    to_view = box_to_box(image_boxes, view_boxes).to(mats)[:, None]
    if mats.dim() == 3:
        mats = mats.unsqueeze(0)
    out = to_view @ mats @ to_image
    eye = torch.eye(3, dtype=mats.dtype, device=mats.device)
    ident = (mats == eye).flatten(-2).all(-1)[..., None, None]
    return torch.where(ident, eye, out)


def box_mask(boxes, view_boxes, size: Tuple[int, int],
             device=None) -> Tensor:
    """Which pixels of a map covering a view overlap a box.

    At full resolution (integer boxes) these are the pixels inside the box;
    on a coarser map (a stride-4 logit map) a pixel that covers part of the
    box counts too, as its value is computed partly from the box.

    Args:
        boxes (Tensor | Sequence): ``[B, 4]`` boxes (e.g. the images).
        view_boxes (Tensor | Sequence): ``[B, 4]`` boxes the map covers
            (the canvas, or a crop), in the same pixels.
        size (tuple[int, int]): ``(h, w)`` of the map (any resolution).
        device: Device of the result.

    Returns:
        Tensor: ``[B, 1, h, w]`` bool mask.
    """
    boxes = _as_boxes(boxes, torch.empty(0, dtype=torch.float64))
    view = _as_boxes(view_boxes, boxes)
    boxes, view = torch.broadcast_tensors(boxes, view)
    height, width = size
    overlaps = []
    for axis, n in ((0, width), (1, height)):
        edges = torch.arange(n + 1, dtype=boxes.dtype) / n
        edges = view[:, axis, None] + edges * (view[:, axis + 2, None] -
                                               view[:, axis, None])
        overlaps.append((edges[:, :-1] < boxes[:, axis + 2, None])
                        & (edges[:, 1:] > boxes[:, axis, None]))
    mask = overlaps[1][:, :, None] & overlaps[0][:, None, :]
    return mask[:, None].to(device)


def per_image_matrices(matrices_of_size, boxes: Tensor, device) -> Tensor:
    """``[N, ...]`` maps of each image, computed once per distinct size
    (rotations and shears depend on the aspect ratio).

    Args:
        matrices_of_size (Callable): ``(height, width, device) -> Tensor``
            maps relative to an image of that size.
        boxes (Tensor): ``[N, 4]`` image boxes (see :func:`box_to_box`).
        device: Device of the result.
    """
    sizes = [(int(y1 - y0), int(x1 - x0))
             for x0, y0, x1, y1 in boxes.tolist()]
    cache = {hw: matrices_of_size(*hw, device) for hw in set(sizes)}
    return torch.stack([cache[hw] for hw in sizes])


def pixel_matrix(mats: Tensor, height: int, width: int) -> Tensor:
    """Express normalised forward maps in absolute pixel coordinates.

    Pixel ``(x, y)`` is the centre of column x, row y. Handy for tests and
    for users who think in pixels.
    """
    to_norm = torch.tensor(
        [[2.0 / width, 0, 1.0 / width - 1], [0, 2.0 / height, 1.0 / height - 1],
         [0, 0, 1]],
        dtype=mats.dtype,
        device=mats.device)
    return torch.linalg.inv(to_norm) @ mats @ to_norm


def affine_grid(theta: Tensor, height: int, width: int) -> Tensor:
    """``F.affine_grid(theta, [B, C, height, width], align_corners=False)``
    from plain tensor ops.

    The same sampling grid (pixel centres ``(2i + 1) / size - 1``, to float
    rounding), built so that an exported graph keeps the height and width
    dynamic: ``affine_grid``'s decomposition fixes them to the example's.

    Args:
        theta (Tensor): ``[B, 2, 3]`` maps from output to input points.
        height (int): Output height.
        width (int): Output width.

    Returns:
        Tensor: ``[B, height, width, 2]`` ``(x, y)`` sampling points.
    """
    xs = (torch.arange(width, dtype=theta.dtype, device=theta.device) * 2 +
          1) / width - 1
    ys = (torch.arange(height, dtype=theta.dtype, device=theta.device) * 2 +
          1) / height - 1
    xs, ys = xs[None, None, :], ys[None, :, None]
    theta = theta[..., None, None]  # [B, 2, 3, 1, 1]
    # broadcasting, no reshape: reshapes would tie the exported sizes
    return torch.stack([
        theta[:, j, 0] * xs + theta[:, j, 1] * ys + theta[:, j, 2]
        for j in range(2)
    ], -1)


def _sample(inputs: Tensor, sampling: Tensor, mode: str,
            size: Optional[Tuple[int, int]]) -> Tuple[Tensor, Tensor]:
    """Sample ``inputs`` at ``sampling @ output point``; also return validity.

    Returns the sampled tensor and a ``[B, 1, H, W]`` bool mask of output
    pixels whose source lies inside the input.
    """
    height, width = size if size is not None else inputs.shape[-2:]
    grid = affine_grid(sampling[:, :2, :].to(inputs.dtype), height, width)
    out = F.grid_sample(
        inputs, grid, mode=mode, padding_mode='zeros', align_corners=False)
    # a small tolerance keeps exact border pixels valid despite rounding
    valid = (grid.abs() <= 1 + 1e-4).all(dim=-1).unsqueeze(1)
    if (height, width) == tuple(inputs.shape[-2:]):
        # affine_grid's pixel centres are off by ~1e-6 even for the identity,
        # so frames with an exact identity map are copied, bit for bit
        # (no branch on the data: an exported graph keeps this step)
        eye = torch.eye(3, dtype=sampling.dtype, device=sampling.device)
        ident = (sampling == eye).flatten(1).all(dim=1)
        out = torch.where(ident[:, None, None, None], inputs, out)
    return out, valid


def warp(inputs: Tensor,
         mats: Tensor,
         mode: str = 'bilinear',
         fill: Optional[float] = None) -> Tensor:
    """Make frames: warp images (or label maps) forward with ``mats``.

    Args:
        inputs (Tensor): ``[B, C, H, W]``.
        mats (Tensor): ``[B, 3, 3]`` forward maps.
        mode (str): ``'bilinear'`` for images, ``'nearest'`` for labels.
        fill (float, optional): Value of pixels that come from outside the
            image (e.g. 255 for labels). None keeps grid_sample's zeros.

    Returns:
        Tensor: ``[B, C, H, W]`` frames, in the dtype of ``inputs``.
    """
    dtype = inputs.dtype
    work = inputs if dtype.is_floating_point else inputs.float()
    sampling = torch.linalg.inv(mats.to(work.dtype))
    if mode == 'nearest' and fill is not None:
        # Labels: shift values by +1 so that grid_sample's zero padding marks
        # exactly the samples taken outside the image. A geometric validity
        # test could disagree with the nearest lookup on the border and let
        # a padding 0 through as an invented label.
        out, _ = _sample(work + 1, sampling, mode, None)
        out = torch.where(out == 0, out.new_tensor(float(fill)), out - 1)
    else:
        out, valid = _sample(work, sampling, mode, None)
        if fill is not None:
            out = torch.where(valid, out, out.new_tensor(float(fill)))
    return out if dtype.is_floating_point else out.round().to(dtype)


def _count_in_bins(mask: Tensor, size: Tuple[int, int]) -> Tensor:
    """How many set pixels of ``mask`` (``[B, 1, H, W]``) each pixel of a
    coarser ``size`` grid stands for, in the bins of PyTorch's adaptive
    pooling (rows ``floor(i*H/h)`` to ``ceil((i+1)*H/h)``, columns alike).

    Built from cumulative sums and gathers rather than
    ``adaptive_max_pool2d``, whose output size the ONNX export fixes to the
    export's input size: this follows any input size in an exported graph.
    """
    counts = mask.to(torch.float32)
    for dim, (fine, coarse) in zip((-2, -1), zip(mask.shape[-2:], size)):
        index = torch.arange(coarse, device=mask.device)
        start = (index * fine) // coarse
        end = ((index + 1) * fine + coarse - 1) // coarse
        cum = counts.cumsum(dim)
        cum = torch.cat([torch.zeros_like(cum.narrow(dim, 0, 1)), cum], dim)
        counts = cum.index_select(dim, end) - cum.index_select(dim, start)
    return counts


def _pool_any(mask: Tensor, size: Tuple[int, int]) -> Tensor:
    """Whether some pixel of ``mask`` that a pixel of a coarser ``size``
    grid stands for is set (``[B, 1, H, W]`` -> ``[B, 1, h, w]`` bool)."""
    return _count_in_bins(mask > 0, size) > 0.5


def _pool_all(mask: Tensor, size: Tuple[int, int]) -> Tensor:
    """Whether every pixel of ``mask`` that a pixel of a coarser ``size``
    grid stands for is set (``[B, 1, H, W]`` bool -> ``[B, 1, h, w]``)."""
    return _count_in_bins(~(mask > 0), size) < 0.5


def inverse_warp(maps: Tensor,
                 mats: Tensor,
                 mode: str = 'bilinear',
                 region: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Bring per-frame maps back to the image's geometry.

    A pixel is valid when its value interpolates only frame pixels that were
    made from the image alone: the image region (ones by default) is warped
    forward like the frames, its pixels of weight 1 that lie in the region
    (frames are cut to it, see :func:`mmdas.video.warp_frames`) are warped
    back with the maps, and pixels whose weight is 1 again are kept. A
    geometric "inside the frame" test would also keep the half-pixel band
    along the frame border, where ``grid_sample`` blends its zero padding
    into the values, and the band along the image's edge inside the frame,
    which the frame generator blended with black.

    Coarse maps (a stride-4 logit map): give ``region`` at the input's
    resolution. Validity is then decided there and pooled to the maps' grid:
    a map pixel is valid where every image pixel it stands for is valid (and
    where the same test on the maps' own grid passes, as its value
    interpolates neighbouring map pixels, none of which may be partly
    padding). A test on the coarse grid alone counts a map pixel that is
    partly black fill, or partly padding, as valid. A map pixel that is
    partly padding is valid only in a frame whose map is exactly the
    identity: that frame is the image, padded as the 2D model's input is.

    Args:
        maps (Tensor): ``[B, C, h, w]`` maps in frame geometry (any
            resolution with the image's aspect ratio).
        mats (Tensor): ``[B, 3, 3]`` forward maps the frames were made with,
            in the normalised coordinates of the maps (see
            :func:`maps_in_view` for padded or cropped maps).
        mode (str): Interpolation mode.
        region (Tensor, optional): ``[B, 1, H, W]`` bool or 0/1 mask of the
            pixels that hold the image (the rest is padding), the same in
            every frame, covering the same view as ``maps``, at their
            resolution or a finer one (``H >= h``, ``W >= w``). Defaults to
            the whole map.

    Returns:
        tuple[Tensor, Tensor]: Maps in image geometry ``[B, C, h, w]`` and a
        ``[B, 1, h, w]`` bool mask of valid pixels.
    """
    dtype = maps.dtype if maps.dtype.is_floating_point else torch.float32
    mats = mats.to(dtype)
    size = tuple(maps.shape[-2:])
    if region is None:
        region = maps.new_ones((maps.shape[0], 1) + size, dtype=dtype)
    region = region.to(dtype)
    fine = tuple(region.shape[-2:])
    if fine[0] < size[0] or fine[1] < size[1]:
        raise ValueError(
            f'inverse_warp: region of size {fine} is coarser than the maps '
            f'{size}; give it at the maps\' resolution or the input\'s.')
    if fine == size:
        coarse = inside = region
    else:
        # map pixels that cover some image, and those that cover only image
        coarse = _pool_any(region, size).to(dtype)
        inside = _pool_all(region > 0, size).to(dtype)

    def made_from_image(inside: Tensor) -> Tensor:
        # a frame is the image's frame cut to the image region (padded after)
        return (warp(inside, mats, mode) >= 1 - 1e-3) & (inside > 0)

    # one grid_sample for the maps and their weight on their own grid: a
    # value interpolating a map pixel that is partly padding is not valid
    both = torch.cat([maps.to(dtype), made_from_image(inside).to(dtype)],
                     dim=1)
    out, _ = _sample(both, mats, mode, None)
    valid = out[:, -1:] >= 1 - 1e-3
    if fine != size:
        back, _ = _sample(made_from_image(region).to(dtype), mats, mode, None)
        valid_fine = (back >= 1 - 1e-3) | (region <= 0)
        valid = valid & _pool_all(valid_fine, size)
        # a frame that did not move is the image, partly padded pixels too
        eye = torch.eye(3, dtype=mats.dtype, device=mats.device)
        ident = (mats == eye).flatten(1).all(1)[:, None, None, None]
        # logic ops, not a bool torch.where: onnxruntime has no bool Where
        valid = (ident & (coarse > 0)) | (~ident & valid)
    return out[:, :-1], valid
