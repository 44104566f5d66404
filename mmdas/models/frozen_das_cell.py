"""A DAS cell whose ops were chosen by a search: the multi-node policy file.

A single-edge search reduces to one op, written as a
:class:`~mmdas.policy.DASPolicy`. A multi-node cell (``num_nodes > 1``)
does not: its nodes sum edges from every earlier node. Its search therefore
writes the cell itself with one op per edge, a *frozen cell file*::

    {"type": "FrozenDASCell",
     "ops": ["identity", "translate_x", ...],
     "magnitudes": {"translate_x": 0.05, ...},
     "num_frames": 8, "profile": "symmetric", "num_nodes": 4,
     "genotype": ["rotate", "identity", ...]}     # one op per edge

``genotype[e]`` is the op kept on edge ``e`` (edges ordered as in
:class:`DASCell`: node 0's two input edges, then node 1's three, ...).
The DAS preprocessors load it where they take a policy file
(``model.data_preprocessor.policy=.../policy.json``) and train with the cell
frozen: every edge applies its op with weight 1, nothing in the cell learns.
"""
import json
from typing import Optional, Sequence

import torch
from torch import Tensor

from mmdas.policy import read_policy_json
from mmdas.registry import MODELS
from .das_cell import DASCell


@MODELS.register_module()
class FrozenDASCell(DASCell):
    """A :class:`DASCell` with one fixed op per edge.

    Args:
        genotype (Sequence[str]): The op of each edge (``num_edges`` names
            from ``ops``).
        **kwargs: :class:`DASCell` arguments (``ops``, ``magnitudes``,
            ``num_frames``, ``profile``, ``num_nodes``).
    """

    def __init__(self, genotype: Sequence[str], **kwargs):
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
        self.alphas.requires_grad_(False)
        self.register_buffer('frozen_weights', weights, persistent=False)

    def edge_weights(self) -> Tensor:
        return self.frozen_weights

    def set_edge_weights(self, weights: Optional[Tensor]) -> None:
        raise RuntimeError('FrozenDASCell: the edge weights are fixed.')


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
