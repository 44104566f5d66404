"""The differentiable DAS search cell (DARTS relaxation over image->video ops).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmdas import geometry
from mmdas.policy import DASPolicy, check_num_frames, check_profile
from mmdas.registry import MODELS
from mmdas.video import warp_frames

#: Default per-step magnitude of each op (a gentle camera motion: 5% of the
#: image per frame, 5% zoom, 5 degrees).
DEFAULT_MAGNITUDES: Dict[str, float] = dict(
    identity=0.0,
    translate_x=0.05,
    translate_y=0.05,
    scale=1.05,
    rotate=5.0,
    shear_x=0.05,
    shear_y=0.05)

DEFAULT_OPS = ('identity', 'translate_x', 'translate_y', 'scale', 'rotate')


def edges_of_node(node: int) -> Tuple[int, int]:
    """``(first edge, number of edges)`` of DAG node ``node``: its inputs
    are the states ``0 .. node + 1`` (two input nodes, then the nodes
    before it)."""
    return 2 * node + node * (node - 1) // 2, 2 + node


@MODELS.register_module()
class DASCell(BaseModule):
    """DAS search cell: a softmax(α)-weighted mixture of image->video ops.

    Every candidate op turns a video into a video by warping frame ``t`` with
    the op's map at step offset ``d_t`` (see :mod:`mmdas.geometry`); the
    input node is the image repeated T times. As in DARTS, an edge outputs
    ``sum_o softmax(α_edge)_o * op_o(x)``; ops whose weight is exactly 0 are
    skipped without computing them (the perturbation-based selection step
    zeroes one op at a time).

    - ``num_nodes=1``: a single edge from the image to the video (the early
      generation of the authors' code).
    - ``num_nodes=k > 1``: the DARTS DAG of the late generation: two input
      nodes (both the repeated image), ``k`` intermediate nodes, node ``i``
      sums mixed edges from every earlier node, the output is the last node.
      Transforms compose along paths. ``k=4`` gives 14 edges.

    α is ``alphas`` (``[num_edges, num_ops]``, initialised ``1e-3 * N(0,1)``)
    and gets gradients through the mixture. The warp is differentiable in its
    parameters too, so ``learnable_magnitudes=True`` (beyond the paper, whose
    magnitudes are fixed) makes the per-step magnitudes a parameter
    ``magnitudes`` (one per op, shared by all edges, clamped to the op's
    valid range in the forward pass).

    The cell also returns the frames' forward maps for the fusion head. A
    mixture has no single map, so they are those of the dominant path: on
    each node the (edge, op) of largest weight, composed along the path.
    They are exact only when the frames are one path of ops: a single edge
    with a one-hot weight, or a :class:`FrozenDASCell` (each node pruned to
    one input). A multi-node cell sums every node's edges, so even one-hot
    edges give a superposition of differently warped copies. While
    searching, fuse with a plain mean over frames (``fusion='mean'``) rather
    than inverse warping.

    Args:
        ops (Sequence[str]): Candidate ops, keys of
            :data:`mmdas.geometry.OPS`. Defaults to identity, translate_x,
            translate_y, scale and rotate.
        magnitudes (dict, optional): Per-step magnitude of each op, overriding
            :data:`DEFAULT_MAGNITUDES`.
        num_frames (int): T. Defaults to 8.
        profile (str): ``'symmetric'``, ``'pingpong'`` or ``'forward'``
            (see :func:`mmdas.geometry.frame_offsets`). Defaults to
            ``'symmetric'``.
        num_nodes (int): 1 for a single edge, ``k > 1`` for the DAG.
            Defaults to 1.
        learnable_magnitudes (bool): Make magnitudes a parameter.
            Defaults to False.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 ops: Sequence[str] = DEFAULT_OPS,
                 magnitudes: Optional[Dict[str, float]] = None,
                 num_frames: int = 8,
                 profile: str = 'symmetric',
                 num_nodes: int = 1,
                 learnable_magnitudes: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(ops, str) or not isinstance(ops, Sequence) or not ops:
            raise ValueError(f'DASCell.ops: {ops!r} is invalid; it must be a '
                             f'non-empty list of ops from '
                             f'{sorted(geometry.OPS)}.')
        if len(set(ops)) != len(ops):
            raise ValueError(f'DASCell.ops: {list(ops)} lists an op twice.')
        magnitudes = dict(magnitudes or {})
        extra = sorted(set(magnitudes) - set(ops))
        if extra:
            raise ValueError(f'DASCell.magnitudes: {extra} are not in '
                             f'DASCell.ops {list(ops)}.')
        values = []
        for i, op in enumerate(ops):
            if op not in geometry.OPS:
                geometry.check_op(op, 0.0, f'DASCell.ops[{i}]')
            value = magnitudes.get(op, DEFAULT_MAGNITUDES.get(op))
            if value is None:
                raise ValueError(f"DASCell.magnitudes['{op}']: missing; op "
                                 f'{op!r} has no default magnitude.')
            geometry.check_op(op, value, f'DASCell.ops[{i}]',
                              f"DASCell.magnitudes['{op}']")
            values.append(float(value))
        self.ops = tuple(ops)
        self.num_frames = check_num_frames(num_frames, 'DASCell.num_frames')
        self.profile = check_profile(profile, 'DASCell.profile')
        self.num_nodes = check_num_frames(num_nodes, 'DASCell.num_nodes')
        self.learnable_magnitudes = learnable_magnitudes

        k = self.num_nodes
        self.num_edges = 1 if k == 1 else edges_of_node(k)[0]
        self.alphas = nn.Parameter(1e-3 *
                                   torch.randn(self.num_edges, len(ops)))
        mags = torch.tensor(values)
        if learnable_magnitudes:
            self.magnitudes = nn.Parameter(mags)
        else:
            self.register_buffer('magnitudes', mags)
        self.register_buffer(
            'offsets', geometry.frame_offsets(num_frames, profile), False)
        self._fixed_weights: Optional[Tensor] = None

    # ---- weights ----------------------------------------------------------
    def edge_weights(self) -> Tensor:
        """``[num_edges, num_ops]`` op weights: softmax(α), or the weights
        fixed with :meth:`set_edge_weights`."""
        if self._fixed_weights is not None:
            return self._fixed_weights.to(self.alphas)
        return torch.softmax(self.alphas, dim=-1)

    def set_edge_weights(self, weights: Optional[Tensor]) -> None:
        """Fix the op weights used by :meth:`forward` (None: back to α).

        The selection step zeroes one op of an edge (others keep their
        softmax weight) or makes an edge one-hot; zero-weight ops are
        skipped.
        """
        if weights is not None:
            weights = torch.as_tensor(weights, dtype=torch.float32)
            if tuple(weights.shape) != tuple(self.alphas.shape):
                raise ValueError(
                    f'DASCell.set_edge_weights: weights of shape '
                    f'{tuple(weights.shape)}, expected '
                    f'{tuple(self.alphas.shape)} (edges x ops).')
        self._fixed_weights = weights

    def genotype(self) -> List[str]:
        """The op of largest weight on each edge."""
        best = self.edge_weights().argmax(dim=-1).tolist()
        return [self.ops[i] for i in best]

    def strongest_inputs(self,
                         genotype: Optional[Sequence[str]] = None
                         ) -> List[int]:
        """For each DAG node, the input whose edge gives its kept op the
        largest softmax(α) weight: the one input a
        :class:`FrozenDASCell` keeps (darts-pt prunes each node to its
        strongest inputs the same way).

        Args:
            genotype (Sequence[str], optional): The kept op of each edge
                (e.g. the perturbation-based selection's). Defaults to
                :meth:`genotype`.

        Returns:
            list[int]: ``node_inputs``, the state each node reads (0 and 1:
            the input nodes; ``2 + j``: node j). Empty for one edge.
        """
        if self.num_nodes == 1:
            return []
        genotype = self.genotype() if genotype is None else list(genotype)
        strength = torch.softmax(self.alphas.detach().float(), dim=-1)
        inputs = []
        for node in range(self.num_nodes):
            first, count = edges_of_node(node)
            scores = [
                float(strength[first + j, self.ops.index(genotype[first + j])])
                for j in range(count)
            ]
            inputs.append(max(range(count), key=scores.__getitem__))
        return inputs

    def to_policy(self) -> DASPolicy:
        """The single-edge cell's strongest op as a fixed policy."""
        if self.num_edges != 1:
            raise ValueError('DASCell.to_policy: only a single-edge cell '
                             '(num_nodes=1) reduces to one policy.')
        o = int(self.edge_weights()[0].argmax())
        return DASPolicy(
            [dict(op=self.ops[o], magnitude=float(self._magnitude(o)))],
            num_frames=self.num_frames,
            profile=self.profile)

    # ---- geometry ---------------------------------------------------------
    def _magnitude(self, o: int) -> Tensor:
        spec = geometry.OPS[self.ops[o]]
        low = spec.low + (1e-3 if spec.exclusive_low else 0.0)
        return self.magnitudes[o].clamp(low, spec.high)

    def op_matrices(self, height: int, width: int) -> Tensor:
        """``[num_ops, T, 3, 3]`` forward maps of every op."""
        return torch.stack([
            geometry.op_matrices(op, self._magnitude(o), self.offsets,
                                 height, width)
            for o, op in enumerate(self.ops)
        ])

    # ---- forward ----------------------------------------------------------
    def forward(self,
                images: Tensor,
                weights: Optional[Tensor] = None,
                background: Optional[Union[float, Tensor]] = None,
                image_boxes: Optional[Tensor] = None
                ) -> Tuple[Tensor, Tensor]:
        """Make the mixed video of a batch of images.

        Args:
            images (Tensor): ``[N, C, H, W]``.
            weights (Tensor, optional): ``[num_edges, num_ops]`` op weights
                for this call; defaults to :meth:`edge_weights`.
            background (float | Tensor, optional): Value (scalar or per
                channel) of pixels that come from outside the image.
            image_boxes (Tensor, optional): ``[N, 4]`` box of each image on
                a padded canvas (see :func:`mmdas.video.warp_frames`); each
                image then moves about its own centre.

        Returns:
            tuple[Tensor, Tensor]: The video ``[N, T, C, H, W]`` and the
            dominant path's forward maps: ``[T, 3, 3]``, or ``[N, T, 3, 3]``
            relative to each image when ``image_boxes`` is given.
        """
        n, c, h, w = images.shape
        t = self.num_frames
        if weights is None:
            weights = self.edge_weights()
        weights = weights.to(device=images.device, dtype=images.dtype)
        # one host sync per call, to skip zero-weight ops without computing
        host = weights.detach().cpu().tolist()
        active = [[v != 0 for v in row] for row in host]
        order = [max(range(len(row)), key=row.__getitem__) for row in host]
        if image_boxes is None:
            mats = self.op_matrices(h, w).to(images.dtype)
        else:
            mats = geometry.per_image_matrices(
                lambda h, w, device: self.op_matrices(h, w),
                torch.as_tensor(image_boxes), None)
            mats = mats.transpose(0, 1).to(images)  # [ops, N, T, 3, 3]
        eye = torch.eye(3, dtype=mats.dtype, device=mats.device).expand(
            t, 3, 3)
        video = images.unsqueeze(1).expand(n, t, c, h, w)
        cache: Dict[int, Tensor] = {}

        def apply(o: int, state: Tensor, from_input: bool) -> Tensor:
            if self.ops[o] == 'identity':
                return state
            if from_input:
                # both input nodes are the repeated image: warp it once per op
                if o not in cache:
                    cache[o] = warp_frames(state, mats[o], background,
                                           image_boxes)
                return cache[o]
            return warp_frames(state, mats[o], background, image_boxes)

        def mixed(edge: int, state: Tensor, from_input: bool):
            out = None
            for o in range(len(self.ops)):
                if not active[edge][o]:
                    continue
                term = weights[edge, o] * apply(o, state, from_input)
                out = term if out is None else out + term
            return out

        if self.num_edges == 1:
            out = mixed(0, video, True)
            out = torch.zeros_like(video) if out is None else out
            return out, mats[order[0]]

        # DARTS DAG: states 0 and 1 are the inputs, node i has 2 + i edges.
        # Nodes that the output does not read (a pruned cell) are skipped.
        firsts = [edges_of_node(i)[0] for i in range(self.num_nodes)]
        needed = [False] * self.num_nodes
        needed[-1] = True
        for i in reversed(range(self.num_nodes)):
            for j in range(2, 2 + i):
                if needed[i] and any(active[firsts[i] + j]):
                    needed[j - 2] = True
        states, state_mats = [video, video], [eye, eye]
        for i in range(self.num_nodes):
            if not needed[i]:
                states.append(None)
                state_mats.append(eye)
                continue
            node, best = None, None
            for j, state in enumerate(states):
                edge = firsts[i] + j
                term = mixed(edge, state, j < 2) if any(
                    active[edge]) else None
                if term is not None:
                    node = term if node is None else node + term
                o = order[edge]
                if best is None or host[edge][o] > best[0]:
                    best = (host[edge][o], mats[o] @ state_mats[j])
            states.append(torch.zeros_like(video) if node is None else node)
            state_mats.append(best[1])
        return states[-1], state_mats[-1]

    def extra_repr(self) -> str:
        return (f'ops={self.ops}, num_frames={self.num_frames}, '
                f"profile='{self.profile}', num_nodes={self.num_nodes}, "
                f'num_edges={self.num_edges}, '
                f'learnable_magnitudes={self.learnable_magnitudes}')
