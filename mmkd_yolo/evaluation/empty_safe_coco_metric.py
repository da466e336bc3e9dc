"""mmdet's COCO metric, with a number for a model that detects nothing."""
from __future__ import annotations

from typing import Dict, List, Set

from mmdet.evaluation import CocoMetric
from mmengine.config import Config
from mmengine.logging import MMLogger

from ..registry import METRICS

#: What mmdet's ``CocoMetric`` reports for each metric when ``metric_items`` is not given.
DEFAULT_ITEMS = {
    'bbox': ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'),
    'segm': ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'),
    'proposal': ('AR@100', 'AR@300', 'AR@1000', 'AR_s@1000', 'AR_m@1000', 'AR_l@1000'),
}


@METRICS.register_module()
class EmptySafeCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric``, scoring 0.0 when no image has a single detection.

    mmdet's metric hands pycocotools an empty result list, which it cannot load: it logs
    ``ERROR ... The testing results of the whole dataset is empty`` and returns no number
    at all. A model that detects nothing (an epoch from scratch, a collapsed run) then has
    no ``coco/bbox_mAP``: ``CheckpointHook(save_best=...)`` skips the epoch and scripts
    that read the log find nothing. Here it scores what it is, 0.0 for every key mmdet
    reports (``coco/bbox_mAP``, ``coco/bbox_mAP_50``, ...), with a one-line warning.
    With ``classwise=True`` each class's ``<class>_precision`` is 0.0 too, or NaN for a
    class without ground truth (as mmdet gives it). Anything with a detection, and
    ``format_only``, is mmdet's metric unchanged; the arguments are mmdet's.
    """

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """mmdet's metrics, or :meth:`empty_metrics` when no image has a detection.

        Args:
            results (list): ``(ground truth, prediction)`` per image, as
                :meth:`process` stores them; a prediction's ``labels`` has shape (K, ).
        """
        if self.format_only or any(len(pred['labels']) for _, pred in results):
            return super().compute_metrics(results)
        metrics = self.empty_metrics(results)
        MMLogger.get_current_instance().warning(
            f'no detection in any of the {len(results)} images: {self.prefix}/'
            f'{next(iter(metrics))} and the other COCO metrics scored 0.0 (an untrained or '
            'collapsed model, or a score threshold too high).')
        return metrics

    def empty_metrics(self, results: list) -> Dict[str, float]:
        """Every key mmdet's ``compute_metrics`` returns (unprefixed) for ``results``
        without a detection: 0.0, NaN for a class without ground truth."""
        keys: List[str] = []
        for metric in self.metrics:
            if metric == 'proposal_fast':
                keys += [f'AR@{num}' for num in self.proposal_nums]
            elif metric == 'proposal':
                keys += list(self.metric_items or DEFAULT_ITEMS['proposal'])
            else:
                keys += [f'{metric}_{item}'
                         for item in self.metric_items or DEFAULT_ITEMS[metric]]
        metrics = {key: 0.0 for key in keys}
        if self.classwise and set(self.metrics) & {'bbox', 'segm'}:
            with_gt = self._classes_with_gt(results)
            metrics.update({f'{name}_precision': 0.0 if name in with_gt else float('nan')
                            for name in self.dataset_meta['classes']})
        return metrics

    def _classes_with_gt(self, results: list) -> Set[str]:
        """Names of the classes with a (not ignored) ground-truth box: in the annotation
        file where there is one, as mmdet evaluates it; else in ``results``."""
        classes = self.dataset_meta['classes']
        if self._coco_api is None:
            return {classes[ann['bbox_label']] for gt, _ in results for ann in gt['anns']
                    if not ann.get('ignore_flag', 0)}
        api = self._coco_api
        return {cat['name'] for cat in api.load_cats(api.get_cat_ids(cat_names=classes))
                if api.get_ann_ids(cat_ids=[cat['id']], iscrowd=False)}


def use_empty_safe_coco_metric(cfg: Config) -> None:
    """Evaluate with :class:`EmptySafeCocoMetric` where ``cfg`` uses mmdet's
    ``CocoMetric``, in place (its arguments kept).

    Every YOLOv5 config inherits mmyolo's ``val_evaluator = dict(type='mmdet.CocoMetric',
    ...)``, ours and plain mmyolo ones alike: ``tools/train.py``, ``tools/test.py`` and
    ``onnx_test.py`` swap it here rather than every config restating its evaluator.

    Args:
        cfg (Config): With ``val_evaluator`` and/or ``test_evaluator``: a metric dict, a
            list of them, or an ``Evaluator`` dict with ``metrics``.
    """
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(key)
        if isinstance(evaluator, dict) and 'metrics' in evaluator:
            evaluator = evaluator['metrics']
        for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
            if isinstance(metric, dict) and metric.get('type') in ('CocoMetric',
                                                                   'mmdet.CocoMetric'):
                metric['type'] = 'mmkd_yolo.EmptySafeCocoMetric'
