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


def test_no_labeled_image_in_a_batch_is_refused():
    with pytest.raises(ConfigError, match='holds no labeled image'):
        LabeledEpochSampler(concat(10, 10), 4, [0.0, 1.0], seed=0)
