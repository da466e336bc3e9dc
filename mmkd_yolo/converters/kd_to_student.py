"""A distillation checkpoint -> a plain mmyolo checkpoint of its student."""
from __future__ import annotations

from typing import Any, Dict

from ..errors import CheckpointError
from .detector_weights import read_detector_weights


def extract_student(path: str, use_ema: bool = True) -> Dict[str, Any]:
    """Strip teacher and connectors from a :class:`YOLOv5Distill` checkpoint.

    Args:
        path (str): A checkpoint saved by a distillation run.
        use_ema (bool): Take the EMA weights when the checkpoint has them (what
            validation during training evaluated). Defaults to True.

    Returns:
        dict: ``state_dict`` (mmyolo ``YOLODetector`` names) and ``meta``.
    """
    weights = read_detector_weights(path, use_ema=use_ema)
    if weights.kind != 'distillation':
        raise CheckpointError(
            f'{path!r} holds no student (no "architecture." weights): it is not a '
            'distillation checkpoint. A plain mmyolo checkpoint needs no conversion.')
    meta = dict(weights.meta, distilled_from=path, ema=weights.ema)
    return dict(state_dict=weights.state_dict, meta=meta)
