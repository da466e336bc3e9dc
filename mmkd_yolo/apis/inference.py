"""Detections on image files, for PyTorch and exported ONNX detectors alike."""
from __future__ import annotations

from typing import List

import torch


@torch.no_grad()
def detect(model, images: List[str]):
    """mmdet's ``inference_detector`` for PyTorch and ONNX models alike.

    Args:
        model (nn.Module): A detector of :func:`~mmkd_yolo.apis.detector.load_detector` or
            :func:`~mmkd_yolo.apis.onnx_detector.load_onnx_detector` (with ``cfg``).
        images (list[str]): Image files.

    Yields:
        tuple: (image path, ``InstanceData`` with bboxes, scores, labels).
    """
    from mmdet.apis import inference_detector
    from mmengine.registry import DefaultScope
    for path in images:
        # the test pipeline's transforms are in the model config's scope (mmyolo's)
        with DefaultScope.overwrite_default_scope(model.cfg.get('default_scope', 'mmyolo')):
            result = inference_detector(model, path)
        yield path, result.pred_instances
