"""mmengine's EMAHook, averaging the student of a distillation model only."""
from __future__ import annotations

import copy
import logging

from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import MODELS
from mmengine.runner.checkpoint import load_state_dict

from ..registry import HOOKS

#: Where :class:`YOLOv5Distill` keeps its student in the state dict (mmrazor's name).
STUDENT_PREFIX = 'architecture.'


@HOOKS.register_module()
class StudentEMAHook(EMAHook):
    """Exponential moving average of the student only.

    mmengine's ``EMAHook`` deep-copies and averages the whole model it is given; for a
    distillation model that is the frozen teacher too (and the connectors, which are
    thrown away after training): the copy costs the teacher's memory again and every
    iteration averages weights that never change. This hook averages
    ``model.student`` alone and keeps mmengine's checkpoint layout: ``state_dict`` holds
    the averaged student (``architecture.*``) beside the raw teacher, ``ema_state_dict``
    the raw student under ``module.architecture.*``, so ``kd_to_student.py``,
    ``tools/test.py`` and exact resume work as with ``EMAHook``. On a model without a
    student it behaves as ``EMAHook``.

    Args:
        Those of mmengine's ``EMAHook`` (``ema_type``, ``momentum``, ``update_buffers``,
        ``strict_load``, ``begin_iter``, ``begin_epoch``).
    """

    def before_run(self, runner) -> None:
        """Build the EMA copy of the student (or of the whole model when it has none)."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.prefix = STUDENT_PREFIX if hasattr(model, 'student') else ''
        self.src_model = model.student if self.prefix else model
        self.ema_model = MODELS.build(self.ema_cfg, default_args=dict(model=self.src_model))

    def _full_ema_state(self) -> dict:
        """The EMA model's state under the whole model's names (``module.<prefix>...``)."""
        return {(f'module.{self.prefix}{k[len("module."):]}' if k.startswith('module.')
                 else k): v for k, v in self.ema_model.state_dict().items()}

    def _own_ema_state(self, state: dict) -> dict:
        """The inverse of :meth:`_full_ema_state`."""
        head = f'module.{self.prefix}'
        return {(f'module.{k[len(head):]}' if k.startswith(head) else k): v
                for k, v in state.items() if k.startswith(head) or not k.startswith('module.')}

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Averaged student under ``state_dict``, raw student under ``ema_state_dict``."""
        checkpoint['ema_state_dict'] = self._full_ema_state()
        self._swap_ema_state_dict(checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Resume the average (or start it from the loaded weights)."""
        if 'ema_state_dict' in checkpoint and runner._resume:
            self._swap_ema_state_dict(checkpoint)
            self.ema_model.load_state_dict(
                self._own_ema_state(checkpoint['ema_state_dict']), strict=self.strict_load)
            return
        if runner._resume:
            print_log('There is no `ema_state_dict` in checkpoint. `StudentEMAHook` will '
                      'start the average from `state_dict`.', 'current', logging.WARNING)
        state = {k[len(self.prefix):]: v for k, v in checkpoint['state_dict'].items()
                 if k.startswith(self.prefix)}
        load_state_dict(self.ema_model.module, copy.deepcopy(state), strict=self.strict_load)
