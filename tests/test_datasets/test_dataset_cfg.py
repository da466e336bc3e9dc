"""The one walker over dataset wrappers, and the config edits that rely on it."""
import copy

from mmkd_yolo.apis import load_config, set_img_size
from mmkd_yolo.apis.config import inner_dataset
from mmkd_yolo.datasets.dataset_cfg import leaf_datasets

from ..conftest import KD_OUT_S2N


def test_leaves_of_wrappers_and_concatenations_are_the_configs_own():
    a, b, c = dict(type='A', ann_file='a'), dict(type='B'), dict(type='C')
    dataset = dict(type='RepeatDataset', times=3, dataset=dict(type='ConcatDataset', datasets=[
        a, dict(type='ClassBalancedDataset', dataset=b), c]))
    leaves = leaf_datasets(dataset)
    assert leaves == [a, b, c] and all(x is y for x, y in zip(leaves, (a, b, c)))
    assert leaf_datasets(a) == [a]
    assert inner_dataset(dict(dataset=dataset)) is a  # the first: the labeled set


def test_img_size_reaches_every_dataset_of_a_concatenation():
    """--img-size on a concatenated training / val set resizes each dataset (was: a
    KeyError on the ConcatDataset's missing pipeline)."""
    cfg = load_config(KD_OUT_S2N)
    for loader in ('train_dataloader', 'val_dataloader'):
        dataset = cfg[loader].dataset
        cfg[loader].dataset = dict(type='ConcatDataset',
                                   datasets=[dataset, copy.deepcopy(dataset)])
    set_img_size(cfg, 96)
    for loader in ('train_dataloader', 'val_dataloader'):
        for dataset in cfg[loader].dataset.datasets:
            scales = [t['scale'] for t in dataset.pipeline if 'scale' in t]
            scales += [t['img_scale'] for t in dataset.pipeline if 'img_scale' in t]
            assert scales and all(tuple(s) == (96, 96) for s in scales), dataset.pipeline
