"""Lenient teacher loading with a report, as YOLOv5 users know it.

mmengine's ``load_checkpoint(strict=False)`` only warns about mismatches, and a shape
mismatch is an exception inside ``load_state_dict``. A teacher must instead take every
tensor that fits (same name, same shape), report ``Transferred N/M items`` and name the
rest, and refuse checkpoints that clearly belong to another model.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import _load_checkpoint

from ..converters import is_ultralytics_checkpoint, load_or_convert
from ..errors import CheckpointError
from ..models.detector_cfg import mmyolo_yolov5_config, yolov5_size

#: Prefixes under which a state dict may hold the detector (DDP, a distillation run).
_STRIP_PREFIXES = ('module.', )


def _extract_state_dict(checkpoint, path: str) -> Dict[str, torch.Tensor]:
    state = checkpoint
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    elif isinstance(state, dict) and 'model' in state and isinstance(state['model'], dict):
        state = state['model']
    if not isinstance(state, dict) or not any(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f'{path!r} holds no state dict (found {type(state).__name__}); give an '
            'mmengine checkpoint (.pth) or a saved state dict of an mmyolo YOLOv5 model.')
    out = OrderedDict()
    for key, value in state.items():
        for prefix in _STRIP_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith('architecture.'):  # a distillation checkpoint: its student
            key = key[len('architecture.'):]
        elif key.startswith(('teacher.', 'distiller.')):
            continue
        out[key] = value
    return out


def intersect_state_dicts(
        src: Dict[str, torch.Tensor], dst: Dict[str, torch.Tensor]
) -> Tuple[Dict[str, torch.Tensor], List[str], List[str]]:
    """Tensors of ``src`` that fit ``dst`` by name and shape.

    Args:
        src (dict): The checkpoint's state dict.
        dst (dict): The model's state dict.

    Returns:
        tuple: (fitting tensors, names of ``dst`` left untouched, names of ``src`` whose
        shape differs from the model's).
    """
    fit = OrderedDict()
    shape_mismatch = []
    for key, value in src.items():
        if 'anchor' in key or key not in dst:
            continue
        if value.shape == dst[key].shape:
            fit[key] = value
        else:
            shape_mismatch.append(key)
    missing = [k for k in dst if k not in fit]
    return fit, missing, shape_mismatch


def _check_ultralytics_meta(teacher: torch.nn.Module, meta: dict, path: str) -> None:
    """Class count, size and anchors of a converted checkpoint against the teacher."""
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
    config_anchors = [[tuple(float(v) for v in a) for a in level]
                      for level in head.prior_generator.base_sizes]
    if any(abs(a - b) > 0.5 for la, lb in zip(meta['anchors'], config_anchors)
           for pa, pb in zip(la, lb) for a, b in zip(pa, pb)):
        raise CheckpointError(
            f'teacher weights {path!r} were trained with anchors {meta["anchors"]} (e.g. '
            f'by autoanchor), the config has {config_anchors}. Output distillation '
            'compares raw box predictions, which only agree for the same anchors: set '
            'model.architecture.bbox_head.prior_generator.base_sizes and the teacher\'s to '
            'the checkpoint\'s anchors.')


def _head_classes(state: Dict[str, torch.Tensor], num_priors: int) -> int:
    for key, value in state.items():
        if key.endswith('convs_pred.0.weight'):
            return value.shape[0] // num_priors - 5
    return -1


def load_teacher_weights(teacher: torch.nn.Module, path: str) -> Tuple[int, int]:
    """Load ``path`` into ``teacher`` leniently and log what transferred.

    Args:
        teacher (nn.Module): An mmyolo YOLOv5 detector.
        path (str): mmengine checkpoint or state dict.

    Returns:
        tuple[int, int]: (tensors transferred, tensors in the teacher's state dict).

    Raises:
        CheckpointError: Unreadable file, no state dict, a head trained for another class
            count, or no tensor of the checkpoint fits the teacher.
    """
    logger = MMLogger.get_current_instance()
    if is_ultralytics_checkpoint(path):
        checkpoint, cached = load_or_convert(path)
        logger.info(f'{path} is an Ultralytics YOLOv5 checkpoint: converted without running '
                    f'its pickle, cached as {cached}')
        _check_ultralytics_meta(teacher, checkpoint['meta'], path)
    else:
        checkpoint = _load_checkpoint(path, map_location='cpu')
    src = _extract_state_dict(checkpoint, path)
    dst = teacher.state_dict()
    fit, missing, mismatch = intersect_state_dicts(src, dst)
    head = getattr(teacher, 'bbox_head', None)
    if head is not None and any('convs_pred' in k for k in mismatch):
        num_priors = head.head_module.num_base_priors
        raise CheckpointError(
            f'teacher weights {path!r} are for {_head_classes(src, num_priors)} classes, '
            f'but the teacher config has num_classes={head.num_classes}. Set the '
            "teacher's num_classes to the checkpoint's, or use weights trained on your data.")
    if not fit:
        raise CheckpointError(
            f'no tensor of {path!r} fits the teacher (0/{len(dst)} by name and shape): '
            'the file is for another architecture; check --t-cfg / teacher config and '
            '--t-weights / teacher_ckpt.')
    teacher.load_state_dict(fit, strict=False)
    logger.info(f'Transferred {len(fit)}/{len(dst)} items from {path}')
    if missing:
        logger.warning(f'teacher tensors not in the checkpoint ({len(missing)}): '
                       f'{_short(missing)}')
    if mismatch:
        logger.warning(f'checkpoint tensors with another shape, skipped ({len(mismatch)}): '
                       f'{_short(mismatch)}')
    return len(fit), len(dst)


def _short(names: List[str], n: int = 8) -> str:
    return ', '.join(names[:n]) + (f', ... (+{len(names) - n})' if len(names) > n else '')
