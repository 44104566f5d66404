"""A fixed part of a dataset (the DAS search's weight part and α part)."""
from typing import List, Sequence, Tuple

import numpy as np
from torch.utils.data import Dataset


class DatasetPart(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Unlike :class:`torch.utils.data.Subset` it keeps the wrapped dataset's
    ``metainfo`` (which the runner and the visualiser read), and a deep copy
    shares the wrapped dataset: ``Runner.build_dataloader`` deep-copies its
    config, and a part of ImageNet must not duplicate ImageNet.

    Args:
        dataset (Dataset): The full dataset (already built).
        indices (Sequence[int]): Indices into ``dataset``.
    """

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        if self.indices and not 0 <= min(self.indices) <= max(
                self.indices) < len(dataset):
            raise IndexError(f'DatasetPart: indices must lie in [0, '
                             f'{len(dataset)}) for a dataset of '
                             f'{len(dataset)} samples.')

    @property
    def metainfo(self) -> dict:
        return getattr(self.dataset, 'metainfo', {})

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: int):
        return self.dataset[self.indices[idx]]

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(self.indices[idx])

    def __deepcopy__(self, memo):
        return DatasetPart(self.dataset, self.indices)


def split_indices(num_samples: int, portion: float,
                  seed: int) -> Tuple[List[int], List[int]]:
    """Split ``range(num_samples)`` at random into two disjoint parts.

    Deterministic given ``seed``: the first ``floor(portion * num_samples)``
    indices of a seeded permutation form the first part (as DARTS splits its
    training set), the rest the second. Both parts are returned sorted.
    """
    order = np.random.default_rng(seed).permutation(num_samples)
    cut = int(np.floor(portion * num_samples))
    return sorted(order[:cut].tolist()), sorted(order[cut:].tolist())
