"""--data: a config pointed at an Ultralytics data.yaml dataset."""
import copy
import os.path as osp

import pytest

from mmkd_yolo.apis import apply_data_yaml, load_config

from ..conftest import KD_OUT_S2N
from ..test_datasets.test_yolo_data import make_yolo_tree


def test_apply_sets_datasets_and_class_counts(tmp_path, monkeypatch):
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    data = make_yolo_tree(tmp_path, {'a': '0 0.5 0.5 0.5 0.5\n'})
    cfg = load_config(KD_OUT_S2N)
    old_w = cfg.model.architecture.bbox_head.loss_cls.loss_weight
    old_nc = cfg.model.architecture.bbox_head.head_module.num_classes
    apply_data_yaml(cfg, data)
    for model in (cfg.model.architecture, cfg.model.teacher):
        assert model.bbox_head.head_module.num_classes == 2
    assert cfg.model.architecture.bbox_head.loss_cls.loss_weight == pytest.approx(
        old_w * 2 / old_nc)
    assert cfg.train_dataloader.dataset.metainfo.classes == ('cat', 'dog')
    assert cfg.val_evaluator.ann_file == cfg.val_dataloader.dataset.ann_file
    assert osp.isfile(cfg.train_dataloader.dataset.ann_file)


@pytest.mark.parametrize('text', [
    'names: [cat, dog]\n',  # no train / val
    'train: images\nval: images\nnc: {a: 2}\n',
    'train: [1, 2]\nval: images\nnames: [a]\n',
    'train: images\nval: images\nnc: 0\nnames: []\n',
])
def test_malformed_data_yaml_is_a_data_error_and_config_untouched(tmp_path, monkeypatch,
                                                                  text):
    # found by tests/test_fuzz_inputs.py: a raw TypeError (nc: {a: 2}, train: [1, 2]) or,
    # for nc: 0, a config set to zero classes
    from mmkd_yolo.errors import DataError
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    make_yolo_tree(tmp_path, {'a': '0 0.5 0.5 0.5 0.5\n'})
    (tmp_path / 'data.yaml').write_text(text)
    cfg = load_config(KD_OUT_S2N)
    before = copy.deepcopy(cfg.to_dict())  # (pretty_text: the same check, 1.5 s slower)
    with pytest.raises(DataError, match='data.yaml'):
        apply_data_yaml(cfg, str(tmp_path / 'data.yaml'))
    assert cfg.to_dict() == before


def test_missing_annotation_file_is_named_before_the_run(tmp_path, monkeypatch):
    """The CPU-scale configs read data/shapes/ under the current folder: where it is not,
    the error names the dataloader, the file and the fix; with the data it passes."""
    from mmkd_yolo.apis import check_data_files
    from mmkd_yolo.datasets import make_shapes_dataset
    from mmkd_yolo.errors import DataError
    monkeypatch.chdir(tmp_path)
    cfg = load_config(KD_OUT_S2N)
    with pytest.raises(DataError, match=r"train_dataloader.dataset: annotation file "
                       r"'data/shapes/annotations/train.json' does not exist.*--data"):
        check_data_files(cfg, ('train_dataloader', 'val_dataloader'))
    make_shapes_dataset(str(tmp_path / 'data' / 'shapes'), num_train=2, num_val=2,
                        img_size=32, seed=0)
    check_data_files(cfg, ('train_dataloader', 'val_dataloader', 'test_dataloader'))
    cfg.val_evaluator.ann_file = 'data/shapes/annotations/nothing.json'
    with pytest.raises(DataError, match=r"val_evaluator: annotation file "
                       r"'data/shapes/annotations/nothing.json'"):
        check_data_files(cfg, ('train_dataloader', 'val_dataloader'))
    check_data_files(cfg, ('train_dataloader', 'test_dataloader'))  # val not used: fine


def test_a_concatenated_training_set_becomes_the_data_files_split(tmp_path, monkeypatch):
    """--data on a config that concatenates datasets (as mmyolo's VOC configs do): the
    training set is the data file's split once, with the first dataset's pipeline, and
    the log says so (was: the split's json set on the ConcatDataset itself)."""
    from mmkd_yolo.datasets.dataset_cfg import leaf_datasets

    from ..helpers.logs import logged
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    data = make_yolo_tree(tmp_path, {'a': '0 0.5 0.5 0.5 0.5\n'})
    cfg = load_config(KD_OUT_S2N)
    first = cfg.train_dataloader.dataset
    second = dict(first, pipeline=[])
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2, dataset=dict(
        type='ConcatDataset', datasets=[first, second]))
    with logged('data_concat_test') as records:
        apply_data_yaml(cfg, data)
    dataset = cfg.train_dataloader.dataset
    assert leaf_datasets(dataset) == [dataset]
    assert osp.isfile(dataset.ann_file) and dataset.pipeline == first.pipeline
    assert dataset.metainfo.classes == ('cat', 'dog')
    assert any('train_dataloader held 2 datasets' in r.getMessage() for r in records)
