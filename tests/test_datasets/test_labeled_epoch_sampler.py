"""LabeledEpochSampler: fixed batch composition, epochs of the labeled set."""
import itertools

import pytest
from mmengine.dataset import ConcatDataset

from mmkd_yolo.datasets import LabeledEpochSampler
from mmkd_yolo.errors import ConfigError


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
    epochs = [list(sampler) for _ in range(3)]
    n_batches = -(-labeled // n_lab)
    assert len(sampler) == n_batches * batch
    for indexes in epochs:
        assert len(indexes) == len(sampler)
        batches = [indexes[i:i + batch] for i in range(0, len(indexes), batch)]
        for b in batches:
            assert sum(i < labeled for i in b) == n_lab  # labeled first, then unlabeled
            assert all(i < labeled for i in b[:n_lab]) and all(i >= labeled
                                                                for i in b[n_lab:])
    # the labeled stream is a sequence of permutations cut into epochs: the first epoch
    # sees every labeled image, and so does every later block of `labeled` draws
    drawn = [i for indexes in epochs for i in indexes if i < labeled]
    assert set(drawn[:labeled]) == set(range(labeled))
    assert len([i for i in epochs[0] if i < labeled]) - labeled < n_lab
    for start in range(0, len(drawn) - labeled + 1, labeled):
        assert sorted(drawn[start:start + labeled]) == list(range(labeled))
    # the unlabeled stream goes on across epochs rather than restarting
    first = [i for i in epochs[0] if i >= labeled]
    second = [i for i in epochs[1] if i >= labeled]
    if len(first) < unlabeled:
        assert set(first).isdisjoint(second[:unlabeled - len(first)])


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
