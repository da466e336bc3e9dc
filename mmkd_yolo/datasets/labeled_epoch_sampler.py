"""mmdet's multi-source sampler with epochs: labeled and unlabeled images in every batch."""
from __future__ import annotations

import itertools
import math
from typing import Dict, Iterator, List, Sized, Union

import torch
from mmdet.datasets.samplers import MultiSourceSampler
from mmengine.logging import print_log

from ..errors import ConfigError
from ..registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class LabeledEpochSampler(MultiSourceSampler):
    """Batches of a fixed share of each source, in epochs of the labeled set.

    mmdet's ``MultiSourceSampler`` (semi-supervised detection) fills every batch with
    ``source_ratio`` of each dataset of a ``ConcatDataset`` (the same arithmetic here:
    ``int(batch_size * share)`` per extra source, the rest labeled), but its iterator never
    ends: it is made for iteration-based loops, while mmyolo's YOLOv5 schedules count
    epochs (learning rate, distillation stop, EMA, validation). Here:

    * an epoch ends when this rank has drawn its share of the labeled set (the first
      source) once: ``ceil(ceil(len(labeled) / world_size) / labeled per batch)`` batches,
      the same on every rank, however many unlabeled images there are;
    * each source is a stream of permutations (seeded by seed, source and pass), sliced
      by rank, that the epochs cut in turn; :meth:`set_epoch` (mmengine's
      ``DistSamplerSeedHook`` calls it before each epoch) puts every stream where that
      epoch starts, so a resumed run draws what an uninterrupted one would have, and
      every unlabeled image comes round before any comes again.

    Args:
        dataset (Sized): A ``ConcatDataset``; its first dataset is the labeled set.
        batch_size (int): Images per batch (the dataloader's ``batch_size``).
        source_ratio (list[int | float]): Share of each source in a batch; each must
            give its source at least one image per batch.
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
        sizes = [len(d) for d in dataset.datasets]
        if min(self.num_per_source) < 1:
            raise ConfigError(
                f'a batch of {batch_size} with source_ratio {source_ratio} draws '
                f'{self.num_per_source} images from the sources: each needs at least one '
                '(for unlabeled images: --unlabeled-ratio of at least '
                f'{1 / batch_size:.3g} and below {1 - 1 / batch_size:.3g}, or a larger batch).')
        if min(sizes) < 1:
            raise ConfigError(f'a source of the training set has no images (sizes {sizes}, '
                              'the labeled set first): nothing to draw from.')
        self.sizes = sizes
        per_rank = math.ceil(sizes[0] / self.world_size)
        self.num_batches = math.ceil(per_rank / self.num_per_source[0])
        self._permutations: Dict[tuple, List[int]] = {}
        self.set_epoch(0)
        parts = ' + '.join(f'{n} {"labeled" if i == 0 else "unlabeled"}'
                           for i, n in enumerate(self.num_per_source))
        share = (f', {per_rank} of them on each of {self.world_size} ranks'
                 if self.world_size > 1 else '')
        print_log(f'sources: {sizes[0]} labeled images'
                  + ''.join(f', {n} unlabeled' for n in sizes[1:])
                  + f'; each batch of {batch_size}: {parts}; an epoch is {self.num_batches} '
                  f'iterations (the labeled images once{share})', 'current')

    def _permutation(self, source: int, cycle: int) -> List[int]:
        """The ``cycle``-th pass over source ``source``: a permutation of its indexes."""
        key = (source, cycle)
        if key not in self._permutations:
            size = self.sizes[source]
            if self.shuffle:
                g = torch.Generator()
                g.manual_seed(self.seed + 100003 * source + cycle)
                perm = torch.randperm(size, generator=g).tolist()
            else:
                perm = list(range(size))
            self._permutations = {k: v for k, v in self._permutations.items()
                                  if k[0] != source or k[1] >= cycle - 1}
            self._permutations[key] = perm
        return self._permutations[key]

    def _stream(self, source: int, start: int) -> Iterator[int]:
        """This rank's indexes of a source from its ``start``-th draw on: positions
        ``rank + k * world_size`` (k >= start) of the source's stream of permutations."""
        size = self.sizes[source]
        for k in itertools.count(start):
            cycle, offset = divmod(self.rank + k * self.world_size, size)
            yield self._permutation(source, cycle)[offset]

    def set_epoch(self, epoch: int) -> None:
        """Put every source's stream where epoch ``epoch`` (0-based) starts.

        Args:
            epoch (int): The epoch about to be drawn.
        """
        self.epoch = epoch
        self.source2inds = {
            source: self._stream(source, epoch * self.num_batches * num)
            for source, num in enumerate(self.num_per_source)}

    def __iter__(self) -> Iterator[int]:
        """One epoch of indexes into the ``ConcatDataset``, batch by batch."""
        return itertools.islice(super().__iter__(), len(self))

    def __len__(self) -> int:
        """Indexes per epoch: ``num_batches * batch_size``."""
        return self.num_batches * self.batch_size
