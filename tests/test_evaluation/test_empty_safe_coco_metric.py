"""EmptySafeCocoMetric: 0.0 for a model that detects nothing, mmdet's numbers otherwise;
every entry point evaluates with it."""
import logging
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

from mmkd_yolo.evaluation import EmptySafeCocoMetric, use_empty_safe_coco_metric

from ..conftest import KD_OUT_S2N, STUDENT_N
from ..helpers.logs import logged

CLASSES = ('square', 'circle', 'star')
#: Ground truth of two 64 px images: class 0 in both, class 1 in the second, no class 2.
GT = [[([4., 4., 30., 30.], 0)], [([10., 8., 50., 40.], 0), ([34., 30., 60., 62.], 1)]]
BBOX_KEYS = ['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/bbox_mAP_s',
             'coco/bbox_mAP_m', 'coco/bbox_mAP_l']


def evaluate(metric: dict, predicted: bool) -> dict:
    """``metric`` on the two images of :data:`GT`; their predictions are the ground truth
    itself (score 0.9) or nothing."""
    with DefaultScope.overwrite_default_scope('mmyolo'):
        evaluator = Evaluator(dict(metric))
    evaluator.dataset_meta = dict(classes=CLASSES)
    samples = []
    for img_id, boxes in enumerate(GT):
        n = len(boxes) if predicted else 0
        samples.append(dict(
            img_id=img_id, ori_shape=(64, 64),
            pred_instances=dict(bboxes=torch.tensor([b for b, _ in boxes][:n]).reshape(n, 4),
                                scores=torch.full((n, ), 0.9),
                                labels=torch.tensor([c for _, c in boxes][:n], dtype=torch.long)),
            instances=[dict(bbox=b, bbox_label=c, ignore_flag=0) for b, c in boxes]))
    evaluator.process(samples)
    return evaluator.evaluate(len(samples))


def test_no_detection_scores_zero_with_a_warning():
    with logged('test_empty_coco', 'WARNING') as records:
        ours = evaluate(dict(type='mmkd_yolo.EmptySafeCocoMetric'), predicted=False)
    assert ours == {key: 0.0 for key in BBOX_KEYS}
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and 'no detection in any of the 2 images' in warnings[0]
    assert 'coco/bbox_mAP and the other COCO metrics scored 0.0' in warnings[0]
    # what it exists for: mmdet's metric gives no number at all
    assert evaluate(dict(type='mmdet.CocoMetric'), predicted=False) == {}


def test_detections_score_as_mmdet():
    ours = evaluate(dict(type='mmkd_yolo.EmptySafeCocoMetric'), predicted=True)
    assert ours == evaluate(dict(type='mmdet.CocoMetric'), predicted=True)
    assert ours['coco/bbox_mAP'] == 1.0 and ours['coco/bbox_mAP_50'] == 1.0


def test_keys_follow_the_metric_arguments():
    """The keys mmdet gives for detections, at 0.0: metric items, proposals, class-wise
    (NaN for a class without ground truth, as mmdet)."""
    items = evaluate(dict(type='mmkd_yolo.EmptySafeCocoMetric', metric_items=['mAP_50']),
                     predicted=False)
    assert items == {'coco/bbox_mAP_50': 0.0}
    proposal = evaluate(dict(type='mmkd_yolo.EmptySafeCocoMetric', metric='proposal_fast',
                             proposal_nums=(1, 10)), predicted=False)
    assert proposal == {'coco/AR@1': 0.0, 'coco/AR@10': 0.0}
    metric = dict(type='mmkd_yolo.EmptySafeCocoMetric', classwise=True)
    empty, detected = evaluate(metric, predicted=False), evaluate(metric, predicted=True)
    assert set(empty) == set(detected)
    assert detected['coco/square_precision'] == 1.0 and detected['coco/circle_precision'] == 1.0
    assert empty['coco/square_precision'] == 0.0 and empty['coco/circle_precision'] == 0.0
    assert math.isnan(empty['coco/star_precision']) and math.isnan(detected['coco/star_precision'])


def test_config_evaluators_are_swapped_with_their_arguments():
    cfg = Config(dict(
        val_evaluator=dict(type='mmdet.CocoMetric', proposal_nums=[100, 1, 10], ann_file='a.json'),
        test_evaluator=[dict(type='CocoMetric', _scope_='mmdet', classwise=True),
                        dict(type='mmdet.VOCMetric')]))
    use_empty_safe_coco_metric(cfg)
    assert cfg.val_evaluator == dict(type='mmkd_yolo.EmptySafeCocoMetric',
                                     proposal_nums=[100, 1, 10], ann_file='a.json')
    assert cfg.test_evaluator == [
        dict(type='mmkd_yolo.EmptySafeCocoMetric', _scope_='mmdet', classwise=True),
        dict(type='mmdet.VOCMetric')]
    wrapped = Config(dict(test_evaluator=dict(type='Evaluator',
                                              metrics=[dict(type='mmdet.CocoMetric')])))
    use_empty_safe_coco_metric(wrapped)
    assert wrapped.test_evaluator.metrics == [dict(type='mmkd_yolo.EmptySafeCocoMetric')]


@pytest.mark.parametrize('config', [
    KD_OUT_S2N, STUDENT_N, 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'])
def test_train_and_test_configs_evaluate_with_it(config, tmp_path):
    """tools/train.py (validation) and tools/test.py, for the project's configs and plain
    mmyolo ones: the metric is built from the config."""
    from mmkd_yolo.apis.test import load_test_cfg
    from mmkd_yolo.apis.train import prepare_train_cfg
    train = prepare_train_cfg(config, work_dir=str(tmp_path))
    test = load_test_cfg(config, work_dir=str(tmp_path))
    for evaluator in (train.val_evaluator, train.test_evaluator, test.test_evaluator):
        assert evaluator.type == 'mmkd_yolo.EmptySafeCocoMetric'
    assert test.test_evaluator.classwise  # tools/test.py's class-wise table still applies
    with DefaultScope.overwrite_default_scope('mmyolo'):
        built = Evaluator(dict(train.val_evaluator, ann_file=None))
    assert isinstance(built.metrics[0], EmptySafeCocoMetric)
