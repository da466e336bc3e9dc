"""--data: a config pointed at an Ultralytics data.yaml dataset."""
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
    assert cfg.model.architecture.bbox_head.loss_cls.loss_weight == pytest.approx(old_w * 2 / old_nc)
    assert cfg.train_dataloader.dataset.metainfo.classes == ('cat', 'dog')
    assert cfg.val_evaluator.ann_file == cfg.val_dataloader.dataset.ann_file
    assert osp.isfile(cfg.train_dataloader.dataset.ann_file)
