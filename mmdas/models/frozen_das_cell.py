"""A DAS cell whose ops were chosen by a search: the multi-node policy file.

A single-edge search reduces to one op, written as a
:class:`~mmdas.policy.DASPolicy`. A multi-node cell (``num_nodes > 1``)
does not: its search writes the cell itself, a *frozen cell file*::

    {"type": "FrozenDASCell",
     "ops": ["identity", "translate_x", ...],
     "magnitudes": {"translate_x": 0.05, ...},
     "num_frames": 8, "profile": "symmetric", "num_nodes": 4,
     "genotype": ["rotate", "identity", ...],     # one op per edge
     "node_inputs": [1, 0, 3, 2]}                 # one input per node

``genotype[e]`` is the op kept on edge ``e`` (edges ordered as in
:class:`DASCell`: node 0's two input edges, then node 1's three, ...).
``node_inputs[i]`` is the one state node ``i`` keeps of its ``2 + i``
inputs (0 and 1 are the input nodes, ``2 + j`` is node ``j``); the search
cell's node sums all of them, which frozen would be a superposition of
differently warped copies of the image (reference intensity x4 for 2 nodes)
with no single map. Each node is pruned to its strongest input, as darts-pt
prunes, with weight 1: the frames keep the image's intensities, the output
is the ops of one path composed, and the map the cell returns is exact for
the frames, so ``fusion='inverse_warp'`` is right.
:meth:`DASCell.strongest_inputs` gives ``node_inputs`` from the searched α.
A file without ``node_inputs`` chains the nodes (node ``i`` reads node
``i - 1``, node 0 the image), which is logged.

The DAS preprocessors load the file where they take a policy file
(``model.data_preprocessor.policy=.../policy.json``) and train with the cell
frozen: nothing in the cell learns.
"""
import json
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from torch import Tensor

from mmdas.policy import read_policy_json
from mmdas.registry import MODELS
from .das_cell import DASCell, edges_of_node


@MODELS.register_module()
class FrozenDASCell(DASCell):
    """A :class:`DASCell` with one fixed op per edge and, for several nodes,
    one input per node.

    Args:
        genotype (Sequence[str]): The op of each edge (``num_edges`` names
            from ``ops``).
        node_inputs (Sequence[int], optional): For each node ``i``, the
            state it reads, ``0 <= node_inputs[i] <= i + 1`` (see the module
            docstring). Defaults to the chain ``[1, 2, ..., num_nodes]``.
            Only for ``num_nodes > 1``.
        **kwargs: :class:`DASCell` arguments (``ops``, ``magnitudes``,
            ``num_frames``, ``profile``, ``num_nodes``).
    """

    def __init__(self,
                 genotype: Sequence[str],
                 node_inputs: Optional[Sequence[int]] = None,
                 **kwargs):
        if kwargs.get('learnable_magnitudes'):
            raise ValueError('FrozenDASCell.learnable_magnitudes: a frozen '
                             'cell learns nothing; write the learned '
                             'values into `magnitudes`.')
        super().__init__(**kwargs)
        if isinstance(genotype, str) or len(genotype) != self.num_edges:
            raise ValueError(
                f'FrozenDASCell.genotype: {genotype!r} must list one op per '
                f'edge ({self.num_edges} edges for num_nodes='
                f'{self.num_nodes}).')
        weights = torch.zeros(self.num_edges, len(self.ops))
        for e, op in enumerate(genotype):
            if op not in self.ops:
                raise ValueError(f'FrozenDASCell.genotype[{e}]: {op!r} is '
                                 f'not one of the ops {list(self.ops)}.')
            weights[e, self.ops.index(op)] = 1.0
        self.node_inputs = self._check_node_inputs(node_inputs)
        kept = torch.zeros(self.num_edges)
        for node, state in enumerate(self.node_inputs):
            kept[edges_of_node(node)[0] + state] = 1.0
        if self.num_edges == 1:
            kept[0] = 1.0
        self.alphas.requires_grad_(False)
        self.register_buffer('frozen_weights', weights, persistent=False)
        # the op weights forward uses: pruned edges are not computed
        self.register_buffer(
            'path_weights', weights * kept[:, None], persistent=False)
        self._genotype = list(genotype)

    def _check_node_inputs(self, node_inputs) -> List[int]:
        if self.num_nodes == 1:
            if node_inputs not in (None, [], (), [0], (0, )):
                raise ValueError(
                    f'FrozenDASCell.node_inputs: {node_inputs!r}, but a '
                    'single-edge cell (num_nodes=1) has no nodes to prune.')
            return []
        if node_inputs is None:
            chain = list(range(1, self.num_nodes + 1))
            print_log(
                'FrozenDASCell: no node_inputs; each node reads the one '
                f'before it (node_inputs={chain}), so the frames are one '
                'path of ops composed.', logger='current')
            return chain
        if (isinstance(node_inputs, str)
                or len(node_inputs) != self.num_nodes or not all(
                    isinstance(s, int) and not isinstance(s, bool)
                    and 0 <= s <= i + 1 for i, s in enumerate(node_inputs))):
            raise ValueError(
                f'FrozenDASCell.node_inputs: {node_inputs!r} must give each '
                f'of the {self.num_nodes} nodes one input state, node i '
                'choosing from 0 .. i + 1 (0 and 1: the input nodes, 2 + j: '
                'node j).')
        return list(node_inputs)

    def edge_weights(self) -> Tensor:
        """``[num_edges, num_ops]`` one-hot op of every edge (the
        genotype); :meth:`forward` uses only each node's kept input."""
        return self.frozen_weights

    def set_edge_weights(self, weights: Optional[Tensor]) -> None:
        raise RuntimeError('FrozenDASCell: the edge weights are fixed.')

    def genotype(self) -> List[str]:
        """The op of each edge, as given."""
        return list(self._genotype)

    def path(self) -> List[Tuple[int, str]]:
        """``(edge, op)`` from the image to the output, in the order the
        ops are applied."""
        if self.num_nodes == 1:
            return [(0, self._genotype[0])]
        steps, node = [], self.num_nodes - 1
        while True:
            state = self.node_inputs[node]
            edge = edges_of_node(node)[0] + state
            steps.append((edge, self._genotype[edge]))
            if state < 2:
                return steps[::-1]
            node = state - 2

    def forward(self,
                images: Tensor,
                weights: Optional[Tensor] = None,
                background: Optional[Union[float, Tensor]] = None,
                image_boxes: Optional[Tensor] = None):
        """As :meth:`DASCell.forward`, each node reading only its kept input
        with weight 1: the frames are the path's ops composed, and the maps
        returned are exactly theirs."""
        if weights is not None:
            raise ValueError('FrozenDASCell.forward: the weights are fixed; '
                             'pass none.')
        return super().forward(images, self.path_weights, background,
                               image_boxes)


def is_frozen_cell_file(path: str) -> bool:
    """Whether ``path`` is a JSON file holding a frozen cell (not a
    :class:`~mmdas.policy.DASPolicy`)."""
    if not (isinstance(path, str) and path.endswith('.json')):
        return False
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False  # the policy loader reports what is wrong
    return isinstance(data, dict) and data.get('type') == 'FrozenDASCell'


def load_frozen_cell(path: str) -> FrozenDASCell:
    """Build the :class:`FrozenDASCell` that a frozen cell file describes."""
    cfg = read_policy_json(path, f'frozen cell file {path}')
    try:
        return MODELS.build(cfg)
    except (TypeError, ValueError) as err:
        raise ValueError(f'frozen cell file {path}: {err}') from err
