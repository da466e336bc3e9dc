"""mmdet's multi-source sampler with epochs: labeled and unlabeled images in every batch."""
from __future__ import annotations

import itertools
import math
from typing import Iterator, List, Sized, Union

from mmdet.datasets.samplers import MultiSourceSampler
from mmengine.logging import print_log

from ..errors import ConfigError
from ..registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class LabeledEpochSampler(MultiSourceSampler):
    """Batches of a fixed share of each source, in epochs of the labeled set.

    mmdet's ``MultiSourceSampler`` (semi-supervised detection) fills every batch with
    ``source_ratio`` of each dataset of a ``ConcatDataset``, but its iterator never ends:
    it is made for iteration-based loops, while mmyolo's YOLOv5 schedules count epochs
    (learning rate, distillation stop, EMA, validation). Here an epoch ends when the first
    source, the labeled set, has been drawn once (on each rank, its share): the epoch is
    as long as the labeled set makes it, however many unlabeled images there are, and
    each epoch continues the other sources' shuffled streams where the last one stopped.

    Args:
        dataset (Sized): A ``ConcatDataset``; its first dataset is the labeled set.
        batch_size (int): Images per batch (the dataloader's ``batch_size``).
        source_ratio (list[int | float]): Share of each source in a batch; the labeled
            set's share must give it at least one image per batch.
        shuffle (bool): Shuffle each source. Defaults to True.
        seed (int, optional): Random seed (the Runner's). Defaults to None.
    """

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 source_ratio: List[Union[int, float]],
                 shuffle: bool = True,
                 seed: Union[int, None] = None) -> None:
        super().__init__(dataset, batch_size, source_ratio, shuffle, seed)
        if self.num_per_source[0] < 1:
            raise ConfigError(f'a batch of {batch_size} with source_ratio {source_ratio} '
                              'holds no labeled image: lower the unlabeled share '
                              '(--unlabeled-ratio) or raise the batch size.')
        sizes = [len(d) for d in dataset.datasets]
        per_rank = math.ceil(sizes[0] / self.world_size)
        self.num_batches = math.ceil(per_rank / self.num_per_source[0])
        parts = ' + '.join(f'{n} {"labeled" if i == 0 else "unlabeled"}'
                           for i, n in enumerate(self.num_per_source))
        print_log(f'sources: {sizes[0]} labeled images'
                  + ''.join(f', {n} unlabeled' for n in sizes[1:])
                  + f'; each batch of {batch_size}: {parts}; an epoch is {self.num_batches} '
                  'iterations (the labeled set once' + (' per rank' if self.world_size > 1
                                                         else '') + ')', 'current')

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), len(self))

    def __len__(self) -> int:
        return self.num_batches * self.batch_size
