"""Lenient teacher loading with a report, as YOLOv5 users know it.

mmengine's ``load_checkpoint(strict=False)`` only warns about mismatches. A teacher must
instead take every tensor that fits (same name, same shape), report
``Transferred N/M items`` and name the rest, and refuse checkpoints that clearly belong
to another model: the ``'teacher'`` policy of :mod:`mmkd_yolo.converters.detector_weights`,
which decides what a checkpoint is for every tool.
"""
from __future__ import annotations

from typing import Tuple

import torch
from mmengine.logging import MMLogger

from ..converters import DetectorWeights, fit_detector, read_detector_weights, short_list
from ..errors import CheckpointError
from ..models.detector_cfg import mmyolo_yolov5_config, yolov5_size


def _check_ultralytics_meta(teacher: torch.nn.Module, weights: DetectorWeights) -> None:
    """Class count and size of a converted checkpoint against the teacher (anchors:
    :func:`~mmkd_yolo.converters.fit_detector`)."""
    meta, path = weights.meta, weights.path
    head = teacher.bbox_head
    if meta['num_classes'] != head.num_classes:
        raise CheckpointError(
            f'teacher weights {path!r} are for {meta["num_classes"]} classes, but the '
            f'teacher (and student) config has num_classes={head.num_classes}. Use weights '
            'trained on your data, or set num_classes (e.g. --data) to match.')
    widen, deepen = teacher.backbone.widen_factor, teacher.backbone.deepen_factor
    if (abs(meta['widen_factor'] - widen) > 1e-6 or abs(meta['deepen_factor'] - deepen) > 1e-6):
        raise CheckpointError(
            f'teacher weights {path!r} are a YOLOv5 with depth/width '
            f'{meta["deepen_factor"]}/{meta["widen_factor"]}, the teacher config '
            f'{deepen}/{widen}: give the matching teacher config, e.g. --t-cfg '
            f"'{mmyolo_yolov5_config(yolov5_size(meta['widen_factor']))}'.")


def load_teacher_weights(teacher: torch.nn.Module, path: str) -> Tuple[int, int]:
    """Load ``path`` into ``teacher`` leniently and log what transferred.

    Args:
        teacher (nn.Module): An mmyolo YOLOv5 detector.
        path (str): An Ultralytics ``.pt``, an mmengine checkpoint (a distillation
            checkpoint: its student) or a state dict.

    Returns:
        tuple[int, int]: (tensors transferred, tensors in the teacher's state dict).

    Raises:
        CheckpointError: Unreadable file, no state dict, a head trained for another class
            count, or no tensor of the checkpoint fits the teacher.
    """
    logger = MMLogger.get_current_instance()
    weights = read_detector_weights(path)
    if weights.kind == 'ultralytics':
        logger.info(f'{path} is an Ultralytics YOLOv5 checkpoint: converted without running '
                    f'its pickle, cached as {weights.loadable}')
        _check_ultralytics_meta(teacher, weights)
    elif weights.kind == 'distillation':
        logger.info(f'teacher: {weights.describe()}')
    dst = teacher.state_dict()
    # anchors too: output distillation compares raw box outputs, same anchors or nothing
    report = fit_detector(teacher, weights, 'teacher', 'the teacher')
    teacher.load_state_dict(report.fit, strict=False)
    logger.info(f'Transferred {len(report.fit)}/{len(dst)} items from {path}')
    if report.missing:
        logger.warning(f'teacher tensors not in the checkpoint ({len(report.missing)}): '
                       f'{short_list(report.missing, 8)}')
    if report.mismatched:
        logger.warning(f'checkpoint tensors with another shape, skipped '
                       f'({len(report.mismatched)}): {short_list(report.mismatched, 8)}')
    return len(report.fit), len(dst)
