"""A distillation checkpoint -> a plain mmyolo checkpoint of its student."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict

from ..fileio import load_checkpoint_file
from ..errors import CheckpointError


def extract_student(path: str, use_ema: bool = True) -> Dict[str, Any]:
    """Strip teacher and connectors from a :class:`YOLOv5Distill` checkpoint.

    Args:
        path (str): A checkpoint saved by a distillation run.
        use_ema (bool): Take the EMA weights when the checkpoint has them (what
            validation during training evaluated). Defaults to True.

    Returns:
        dict: ``state_dict`` (mmyolo ``YOLODetector`` names) and ``meta``.
    """
    ckpt = load_checkpoint_file(path, map_location='cpu')
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt:
        raise CheckpointError(f'{path!r} has no state_dict: not an mmengine checkpoint.')
    # mmengine's EMAHook saves the EMA weights under state_dict and the raw ones under
    # ema_state_dict (swapped), so 'state_dict' is already the EMA model when there is one.
    source = ckpt['state_dict']
    if not use_ema and 'ema_state_dict' in ckpt:
        source = {k[len('module.'):]: v for k, v in ckpt['ema_state_dict'].items()
                  if k.startswith('module.')}
    prefix = 'architecture.'
    state = OrderedDict((k[len(prefix):], v) for k, v in source.items() if k.startswith(prefix))
    if not state:
        raise CheckpointError(
            f'{path!r} holds no student (no "architecture." weights): it is not a '
            'distillation checkpoint. A plain mmyolo checkpoint needs no conversion.')
    meta = dict(ckpt.get('meta', {}))
    meta['distilled_from'] = path
    return dict(state_dict=state, meta=meta)
