"""Lenient teacher loading with a report, as YOLOv5 users know it.

mmengine's ``load_checkpoint(strict=False)`` only warns about mismatches. A teacher must
instead take every tensor that fits (same name, same shape), report
``Transferred N/M items`` and name the rest, and refuse checkpoints that clearly belong
to another model: the ``'teacher'`` policy of :mod:`mmkd_yolo.converters.detector_weights`,
which decides what a checkpoint is for every tool. A checkpoint of a run whose teacher
ran in bfloat16 or float16 holds it rounded: :func:`keep_float32_teacher` keeps the float32
one on resume.
"""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
from mmengine.logging import MMLogger

from ..converters import (DetectorWeights, fit_detector, read_detector_weights, short_list,
                          yolov5_width_error)
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
    if abs(meta['widen_factor'] - widen) > 1e-6:
        raise CheckpointError(yolov5_width_error(path, meta['widen_factor'], widen))
    if abs(meta['deepen_factor'] - deepen) > 1e-6:
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



def keep_float32_teacher(teacher: torch.nn.Module, teacher_ckpt: Optional[str]) -> None:
    """Keep the float32 teacher when a checkpoint holds it in bfloat16 or float16.

    A reduced-precision teacher is held in that dtype while it trains the student, so a
    checkpoint (resume, ``load_from``) holds its weights rounded. Loaded as they are
    into the float32 teacher that the model is built with, a run resumed in float32 (or
    in onnxruntime, or in float16 after bfloat16) would distil from a teacher rounded to
    bfloat16, silently. The teacher built from ``teacher_ckpt`` has the exact weights:
    where the checkpoint's are those rounded, they are kept, and the log says so; a
    checkpoint whose teacher is another (or a model without ``teacher_ckpt``) loads as it
    is, with a warning that its teacher is rounded.

    Args:
        teacher (nn.Module): The model's teacher, as loaded from ``teacher_ckpt``.
        teacher_ckpt (str, optional): Where its weights came from (None: random).
    """
    # a partial of a module-level function: the model stays picklable
    teacher.register_load_state_dict_pre_hook(functools.partial(_keep_float32, teacher_ckpt))


def _keep_float32(teacher_ckpt: Optional[str], teacher: torch.nn.Module, state_dict: dict,
                  prefix: str, *args) -> None:
    """The load_state_dict pre-hook of :func:`keep_float32_teacher`."""
    own = teacher.state_dict()
    rounded = {key: value for key, value in state_dict.items()
               if key.startswith(prefix) and key[len(prefix):] in own
               and isinstance(value, torch.Tensor)
               and value.dtype in (torch.bfloat16, torch.float16)
               and own[key[len(prefix):]].dtype == torch.float32}
    if not rounded:
        return
    dtype = next(iter(rounded.values())).dtype
    step = torch.finfo(dtype)

    def is_own_rounded(key: str, value: torch.Tensor) -> bool:
        exact = own[key[len(prefix):]]
        # within one step of the reduced dtype: the fold may differ by a float32 ulp
        return torch.allclose(value.to(exact), exact, rtol=step.eps, atol=step.tiny)

    logger = MMLogger.get_current_instance()
    if teacher_ckpt and all(is_own_rounded(k, v) for k, v in rounded.items()):
        for key in rounded:
            state_dict[key] = own[key[len(prefix):]]
        logger.info(f'the checkpoint holds the teacher in {dtype}, as it ran: kept the '
                    f'float32 values of its {len(rounded)} tensors from {teacher_ckpt}')
        return
    why = (f'its teacher is not that of {teacher_ckpt}' if teacher_ckpt else
           'the model has no teacher_ckpt to take float32 weights from')
    logger.warning(f'the checkpoint holds the teacher in {dtype} and {why}: the teacher '
                   f'now has weights rounded to {dtype}')
