"""Stop training at the first NaN / infinite loss, naming it: plain and distilled runs."""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
from mmengine.hooks import Hook

from ..errors import NonFiniteLossError
from ..registry import HOOKS


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when a logged loss becomes NaN or infinite.

    mmdet's ``CheckInvalidLossHook`` checks only the total, every 50 iterations, with an
    ``assert``; by then the weights and their EMA have trained on garbage for up to 49
    steps. This hook checks every loss part after every iteration and names the parts that
    went bad, the iteration and the last finite values. It runs after the optimizer step
    (hooks see the losses only then: the bad step has been applied to the weights in memory)
    but before the EMA, logger and checkpoint hooks (priority ``HIGH``), so no checkpoint is
    written after the bad step: ``--resume`` continues from the last good one.
    :func:`mmkd_yolo.apis.prepare_train_cfg` adds it to every training config, plain or
    distillation, so the check holds also after distillation stops.
    """

    priority = 'HIGH'

    def __init__(self) -> None:
        self._last_finite: Dict[str, float] = {}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Check ``outputs`` (the parsed losses of this iteration)."""
        if not outputs:
            return
        # the logger hook reads each of them as a float as well
        values = {k: float(v.detach().float().sum()) if isinstance(v, torch.Tensor) else
                  float(v) for k, v in outputs.items() if 'loss' in k}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if not bad:
            self._last_finite = {k: round(v, 4) for k, v in values.items()}
            return
        raise NonFiniteLossError(
            f'iteration {runner.iter + 1}: {", ".join(bad)} became '
            f'{", ".join(str(values[k]) for k in bad)}. Last finite values: '
            f'{self._last_finite or "none (first iteration)"}. Lower the learning rate or '
            'the distillation loss_weight, or check the teacher weights and the data; '
            'resume from the last checkpoint with --resume.')
