"""The val set of a test config, and predictions per image."""
import json
import os.path as osp

import pytest

from mmkd_yolo.analysis import load_predictions, load_val_set, val_set_files
from mmkd_yolo.apis.test import load_test_cfg
from mmkd_yolo.errors import ConfigError, DataError

from ..conftest import STUDENT_N


@pytest.fixture
def ann_file(tmp_path):
    coco = dict(
        images=[dict(id=4, file_name='a.jpg'), dict(id=2, file_name='/abs/b.jpg')],
        categories=[dict(id=5, name='dog'), dict(id=1, name='cat')],
        annotations=[dict(id=1, image_id=4, category_id=5, bbox=[1, 2, 10, 20], iscrowd=0),
                     dict(id=2, image_id=4, category_id=1, bbox=[0, 0, 4, 4], iscrowd=0),
                     dict(id=3, image_id=2, category_id=5, bbox=[3, 3, 6, 6], iscrowd=0),
                     dict(id=4, image_id=2, category_id=5, bbox=[0, 0, 50, 50], iscrowd=1)])
    path = tmp_path / 'val.json'
    path.write_text(json.dumps(coco))
    return str(path)


def test_val_set_classes_by_id_boxes_xyxy_crowd_left_out(ann_file):
    val = load_val_set(ann_file, 'imgs/')
    assert val.classes == ['cat', 'dog'] and val.category_ids == [1, 5]
    assert [im['path'] for im in val.images] == ['imgs/a.jpg', '/abs/b.jpg']
    assert val.gt[4] == [([1, 2, 11, 22], 1, None), ([0, 0, 4, 4], 0, None)]
    assert val.gt[2] == [([3, 3, 9, 9], 1, None)]
    assert val.boxes_per_class == [1, 2] and val.num_boxes == 3


def test_predictions_per_image_by_score(ann_file, tmp_path):
    val = load_val_set(ann_file)
    preds = tmp_path / 'p.bbox.json'
    preds.write_text(json.dumps([
        dict(image_id=4, category_id=1, bbox=[0, 0, 2, 2], score=0.2),
        dict(image_id=4, category_id=5, bbox=[1, 1, 2, 3], score=0.7)]))
    got = load_predictions(str(preds), val)
    assert got == {4: [([1, 1, 3, 4], 1, 0.7), ([0, 0, 2, 2], 0, 0.2)], 2: []}
    # no file: the metric writes none for a model without a detection
    assert load_predictions(str(tmp_path / 'none.bbox.json'), val) == {4: [], 2: []}


def test_missing_annotation_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match='does not exist: give --data'):
        load_val_set(str(tmp_path / 'nope.json'))


def test_val_set_files_of_a_config(tmp_path):
    cfg = load_test_cfg(STUDENT_N, work_dir=str(tmp_path))
    ann, prefix = val_set_files(cfg)
    assert ann == osp.abspath('data/shapes/annotations/val.json')
    assert prefix == 'data/shapes/val/'
    cfg.test_evaluator.pop('ann_file')
    with pytest.raises(ConfigError, match='test_evaluator has no ann_file'):
        val_set_files(cfg)
