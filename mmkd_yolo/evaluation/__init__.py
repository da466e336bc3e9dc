from .empty_safe_coco_metric import EmptySafeCocoMetric, use_empty_safe_coco_metric

__all__ = ['EmptySafeCocoMetric', 'use_empty_safe_coco_metric']
