"""The dataset configs inside a dataloader's dataset: the one walker over wrappers."""
from __future__ import annotations

from typing import List


def leaf_datasets(dataset: dict) -> List[dict]:
    """The dataset configs inside wrappers and concatenations, in order.

    mmengine's and mmdet's wrappers hold one dataset (``RepeatDataset``,
    ``ClassBalancedDataset``, ``MultiImageMixDataset``: ``dataset=``) or several
    (``ConcatDataset``: ``datasets=``); the datasets that read files are the leaves.
    The dicts are the config's own, so changing one changes the config.

    Args:
        dataset (dict): A dataloader's ``dataset`` config.

    Returns:
        list[dict]: The leaf dataset configs; ``[dataset]`` for a plain dataset.
    """
    if 'datasets' in dataset:
        return [leaf for d in dataset['datasets'] for leaf in leaf_datasets(d)]
    if 'dataset' in dataset:
        return leaf_datasets(dataset['dataset'])
    return [dataset]
