"""mmdet's multi-source sampler with epochs: labeled and unlabeled images in every batch."""
from __future__ import annotations

import itertools
import math
from typing import Dict, Iterator, List, Sequence, Sized, Union

import torch
from mmdet.datasets.samplers import MultiSourceSampler
from mmengine.logging import print_log

from ..errors import ConfigError
from ..registry import DATA_SAMPLERS


def split_batch(batch_size: int, source_ratio: Sequence[Union[int, float]],
                at_least_one: bool = True) -> List[int]:
    """Images of each source in a batch, as mmdet's ``MultiSourceSampler`` draws them.

    ``int(batch_size * share)`` for each source after the first (share: its ratio over
    the ratios' sum), the rest for the first (the labeled set). ``--unlabeled-ratio R``
    is ``source_ratio=[1 - R, R]``: ``int(batch_size * R)`` unlabeled images a batch.

    Args:
        batch_size (int): Images per batch.
        source_ratio (Sequence[int | float]): Share of each source, the labeled first.
        at_least_one (bool): Refuse a split that leaves a source without an image in a
            batch (mmdet's sampler would spin forever on it). Defaults to True.

    Returns:
        list[int]: Images per batch of each source; they sum to ``batch_size``.

    Raises:
        ConfigError: A source gets no image (with ``at_least_one``), naming the fix.
    """
    total = sum(source_ratio)
    extra = [int(batch_size * ratio / total) for ratio in source_ratio[1:]]
    split = [batch_size - sum(extra)] + extra
    if at_least_one and min(split) < 1:
        # the smallest R with int(batch_size * R) >= 1, rounded up so that it works
        lowest = math.ceil(1000 / batch_size) / 1000
        fix = (f'--unlabeled-ratio of at least {lowest:g} for this batch size, or a larger '
               'batch' if batch_size > 1 else 'a batch of 2 images or more')
        raise ConfigError(
            f'a batch of {batch_size} split by source_ratio {list(source_ratio)} draws '
            f'{split} images from its sources (the labeled set first): each needs at least '
            f'one in every batch ({fix}; the batch size is train_dataloader.batch_size).')
    return split


@DATA_SAMPLERS.register_module()
class LabeledEpochSampler(MultiSourceSampler):
    """Batches of a fixed share of each source, in epochs of the labeled set.

    mmdet's ``MultiSourceSampler`` (semi-supervised detection) fills every batch with
    ``source_ratio`` of each dataset of a ``ConcatDataset`` (the same arithmetic here:
    :func:`split_batch`), but its iterator never ends: it is made for iteration-based
    loops, while mmyolo's YOLOv5 schedules count epochs (learning rate, distillation
    stop, EMA, validation). Here:

    * an epoch draws every labeled image (the first source) exactly once across the
      ranks: ``ceil(len(labeled) / (world_size * labeled per batch))`` batches on every
      rank, however many unlabeled images there are. Where the labeled images do not
      fill the last batches of all ranks, these are topped up from the next pass (a
      new permutation), as the log says; rank ``r`` draws positions ``r``, ``r +
      world_size``, ... of the epoch's permutation;
    * each unlabeled source is a stream of permutations, sliced by rank, that the epochs
      cut in turn, so every unlabeled image comes round before any comes again;
    * permutations are seeded by seed, source and pass, and what an epoch draws depends
      on its number only (:meth:`set_epoch`, which mmengine's ``DistSamplerSeedHook``
      calls before each epoch): a resumed run draws what an uninterrupted one would have.

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
        self.num_per_source = split_batch(batch_size, source_ratio)
        sizes = [len(d) for d in dataset.datasets]
        if min(sizes) < 1:
            raise ConfigError(f'a source of the training set has no images (sizes {sizes}, '
                              'the labeled set first): nothing to draw from.')
        self.sizes = sizes
        self.num_batches = math.ceil(sizes[0] / (self.world_size * self.num_per_source[0]))
        topped_up = self.world_size * self.num_batches * self.num_per_source[0] - sizes[0]
        self._permutations: Dict[tuple, List[int]] = {}
        self.epoch = 0
        parts = ' + '.join(f'{n} {"labeled" if i == 0 else "unlabeled"}'
                           for i, n in enumerate(self.num_per_source))
        share = f' over {self.world_size} ranks' if self.world_size > 1 else ''
        top = (f'; the last batches are topped up with {topped_up} labeled images of the '
               'next pass' if topped_up else '')
        print_log(f'sources: {sizes[0]} labeled images'
                  + ''.join(f', {n} unlabeled' for n in sizes[1:])
                  + f'; each batch of {batch_size}: {parts}; an epoch is {self.num_batches} '
                  f'iterations (every labeled image once{share}{top})', 'current')

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

    def _labeled(self, epoch: int) -> Iterator[int]:
        """This rank's labeled indexes of epoch ``epoch``: its positions of the epoch's
        pass, continued into the next passes to fill the last batches."""
        size = self.sizes[0]
        drawn = self.world_size * self.num_batches * self.num_per_source[0]
        for k in range(self.rank, drawn, self.world_size):
            cycle, offset = divmod(k, size)
            yield self._permutation(0, epoch + cycle)[offset]

    def _stream(self, source: int, start: int) -> Iterator[int]:
        """This rank's indexes of a source from its ``start``-th draw on: positions
        ``rank + k * world_size`` (k >= start) of the source's stream of permutations."""
        size = self.sizes[source]
        for k in itertools.count(start):
            cycle, offset = divmod(self.rank + k * self.world_size, size)
            yield self._permutation(source, cycle)[offset]

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch`` (0-based) next.

        Args:
            epoch (int): The epoch about to be drawn.
        """
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        """Epoch :attr:`epoch` of indexes into the ``ConcatDataset``, batch by batch."""
        self.source2inds = {0: self._labeled(self.epoch)}  # what mmdet's loop draws from
        for source, num in enumerate(self.num_per_source[1:], 1):
            self.source2inds[source] = self._stream(source,
                                                    self.epoch * self.num_batches * num)
        return itertools.islice(super().__iter__(), len(self))

    def __len__(self) -> int:
        """Indexes per epoch: ``num_batches * batch_size``."""
        return self.num_batches * self.batch_size
