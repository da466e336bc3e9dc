"""LabeledEpochSampler: fixed batch composition, epochs of the labeled set."""
import collections
import itertools

import pytest
from mmengine.dataset import ConcatDataset

from mmkd_yolo.datasets import LabeledEpochSampler
from mmkd_yolo.errors import ConfigError

from ..helpers.logs import logged


class Sized:
    metainfo = {}

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def full_init(self):
        pass

    def get_data_info(self, idx):
        return {}


def concat(*sizes):
    dataset = ConcatDataset.__new__(ConcatDataset)  # no metainfo checks for stand-ins
    dataset.datasets = [Sized(n) for n in sizes]
    dataset.cumulative_sizes = list(itertools.accumulate(sizes))
    return dataset


@pytest.mark.parametrize('labeled,unlabeled,batch,ratio,n_lab', [
    (20, 100, 8, [0.5, 0.5], 4),
    (21, 7, 8, [0.75, 0.25], 6),
    (5, 50, 4, [0.25, 0.75], 1),
])
def test_batches_mix_sources_and_epochs_follow_the_labeled_set(labeled, unlabeled, batch,
                                                               ratio, n_lab):
    sampler = LabeledEpochSampler(concat(labeled, unlabeled), batch, ratio, seed=0)
    epochs = epochs_with_hook(sampler, 3)
    n_batches = -(-labeled // n_lab)
    assert len(sampler) == n_batches * batch
    for indexes in epochs:
        assert len(indexes) == len(sampler)
        batches = [indexes[i:i + batch] for i in range(0, len(indexes), batch)]
        for b in batches:
            assert sum(i < labeled for i in b) == n_lab  # labeled first, then unlabeled
            assert all(i < labeled for i in b[:n_lab]) and all(i >= labeled
                                                                for i in b[n_lab:])
        # every labeled image once; the last batch topped up from the next pass
        drawn = [i for i in indexes if i < labeled]
        assert sorted(drawn[:labeled]) == list(range(labeled))
        assert len(drawn) - labeled < n_lab
    assert epochs[0] != epochs[1]
    # the unlabeled stream goes on across epochs rather than restarting
    first = [i for i in epochs[0] if i >= labeled]
    second = [i for i in epochs[1] if i >= labeled]
    if len(first) < unlabeled:
        assert set(first).isdisjoint(second[:unlabeled - len(first)])


def epochs_of_ranks(labeled, world_size, batch, ratio, epochs, monkeypatch, unlabeled=40):
    """Each rank's sampler of the same launch (seed), and what it draws in each epoch."""
    import mmdet.datasets.samplers.multi_source_sampler as mss
    ranks = []
    for rank in range(world_size):
        monkeypatch.setattr(mss, 'get_dist_info', lambda rank=rank: (rank, world_size))
        sampler = LabeledEpochSampler(concat(labeled, unlabeled), batch, ratio, seed=7)
        ranks.append((sampler, epochs_with_hook(sampler, epochs)))
    return ranks


@pytest.mark.parametrize('labeled,world_size,batch,n_lab', [
    (21, 8, 4, 2),      # 21 on 8 ranks x 2 a batch: 2 batches, 11 top-ups
    (1003, 8, 16, 8),   # a COCO-like config on 8 GPUs, 1003 images: 16 batches, 21 top-ups
    (97, 3, 8, 4),
    (5, 8, 8, 4),       # a tiny set: one batch of 32 labeled draws, several passes
    (64, 8, 16, 8),     # aligned: no top-up
])
def test_an_epoch_draws_every_labeled_image_once_across_ranks(labeled, world_size, batch,
                                                              n_lab, monkeypatch):
    """The union over the ranks of one epoch's labeled draws is the labeled set, each image
    once, plus the top-up of the last batches from the next pass; in every epoch."""
    ratio = [n_lab, batch - n_lab]
    ranks = epochs_of_ranks(labeled, world_size, batch, ratio, 4, monkeypatch)
    n_batches = -(-labeled // (world_size * n_lab))
    drawn_per_epoch = world_size * n_batches * n_lab
    for epoch in range(4):
        per_rank = []
        for sampler, epochs in ranks:
            assert len(sampler) == n_batches * batch  # the same on every rank
            indexes = epochs[epoch]
            batches = [indexes[i:i + batch] for i in range(0, len(indexes), batch)]
            per_rank.append([[i for i in b if i < labeled] for b in batches])
        drawn = [i for rank in per_rank for b in rank for i in b]
        assert len(drawn) == drawn_per_epoch
        assert set(drawn) == set(range(labeled))
        if drawn_per_epoch <= 2 * labeled:
            # the top-up images are drawn twice, the others once
            counts = collections.Counter(drawn)
            assert sum(c == 2 for c in counts.values()) == drawn_per_epoch - labeled
            assert max(counts.values()) <= 2
            # before the last batches no image comes twice
            early = [i for rank in per_rank for b in rank[:-1] for i in b]
            assert len(early) == len(set(early))


def test_the_log_says_an_epoch_and_its_top_up(monkeypatch):
    import mmdet.datasets.samplers.multi_source_sampler as mss
    monkeypatch.setattr(mss, 'get_dist_info', lambda: (3, 8))
    with logged('sampler_test') as records:
        LabeledEpochSampler(concat(1003, 40), 16, [0.5, 0.5], seed=0)
    text = '\n'.join(r.getMessage() for r in records)
    assert 'an epoch is 16 iterations (every labeled image once over 8 ranks' in text
    assert 'topped up with 21 labeled images of the next pass' in text


@pytest.mark.parametrize('batch,ratio,sizes', [
    (4, [0.0, 1.0], (10, 10)),   # no labeled image in a batch
    (2, [0.7, 0.3], (10, 10)),   # int(2 * 0.3) = 0 unlabeled: mmdet's loop would spin
    (4, [0.5, 0.5], (10, 0)),    # an empty source (all filtered out)
])
def test_a_source_without_draws_is_refused(batch, ratio, sizes):
    with pytest.raises(ConfigError, match='each needs at least one|has no images'):
        LabeledEpochSampler(concat(*sizes), batch, ratio, seed=0)


def epochs_with_hook(sampler, n):
    """What the Runner draws: DistSamplerSeedHook calls set_epoch before each epoch."""
    out = []
    for epoch in range(n):
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


def test_set_epoch_resumes_where_an_uninterrupted_run_is():
    uninterrupted = epochs_with_hook(LabeledEpochSampler(concat(21, 50), 8, [0.5, 0.5],
                                                         seed=3), 5)
    assert uninterrupted[0] != uninterrupted[1]
    for k in range(5):
        resumed = LabeledEpochSampler(concat(21, 50), 8, [0.5, 0.5], seed=3)
        resumed.set_epoch(k)
        assert list(resumed) == uninterrupted[k]
    # the unlabeled images come round in full passes: 5 epochs x 6 batches x 4 = 120 draws
    drawn = [i - 21 for epoch in uninterrupted for i in epoch if i >= 21]
    assert sorted(drawn[:50]) == list(range(50)) and sorted(drawn[50:100]) == list(range(50))


def test_ranks_split_the_labeled_set_and_agree_on_the_epoch(monkeypatch):
    import mmdet.datasets.samplers.multi_source_sampler as mss
    draws = []
    for rank in range(2):
        monkeypatch.setattr(mss, 'get_dist_info', lambda rank=rank: (rank, 2))
        sampler = LabeledEpochSampler(concat(16, 30), 4, [0.5, 0.5], seed=0)
        draws.append((len(sampler), epochs_with_hook(sampler, 2)))
    (len0, epochs0), (len1, epochs1) = draws
    assert len0 == len1 == 4 * 4  # ceil(16 / 2) / 2 labeled per batch = 4 batches
    for e in range(2):
        lab0 = {i for i in epochs0[e] if i < 16}
        lab1 = {i for i in epochs1[e] if i < 16}
        assert lab0.isdisjoint(lab1) and lab0 | lab1 == set(range(16))
