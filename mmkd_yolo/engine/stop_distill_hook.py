"""Stop distillation for the last part of training, scaled to the run's real length."""
from __future__ import annotations

import math
from typing import Tuple

from mmengine.model import is_model_wrapper
from mmrazor.engine import StopDistillHook

from ..errors import ConfigError
from ..registry import HOOKS


@HOOKS.register_module()
class StopDistillLastEpochsHook(StopDistillHook):
    """mmrazor's ``StopDistillHook``, with the stop counted from the end and scaled.

    mmrazor's hook takes an absolute ``stop_epoch``, written into a config as
    ``max_epochs - 20``. Overriding ``train_cfg.max_epochs`` then leaves distillation on to
    the end, or (the usual fine-tune of 20 epochs or fewer) switches it off for the whole
    run without a word. This one computes the stop when training starts from the run's
    real length: the last ``min(num_last_epochs, round(max_epochs * last_fraction))``
    epochs (rounded half up) train on the task loss alone (20 of mmyolo's 300 epochs, 2 of
    a 30-epoch fine-tune, none of a 5-epoch one), and logs which epochs distil.

    Two other departures from mmrazor's hook: "Distillation has been stopped!" is logged
    once, not at every later epoch; and the ``distill.*`` scalars are removed from the
    message hub when distillation stops, so the log does not keep printing their last
    values as if they were current.

    Args:
        num_last_epochs (int): At most this many epochs at the end train without
            distillation.
        last_fraction (float): And at most this fraction of the run (rounded). Defaults
            to 1/15 (20 of 300 epochs, as mmyolo's RTMDet distillation recipe).
    """

    def __init__(self, num_last_epochs: int, last_fraction: float = 1 / 15) -> None:
        if num_last_epochs < 0:
            raise ValueError(f'num_last_epochs must be >= 0, got {num_last_epochs}')
        if not 0 <= last_fraction < 1:
            raise ValueError(f'last_fraction must be in [0, 1), got {last_fraction}')
        super().__init__(stop_epoch=-1)
        self.num_last_epochs = num_last_epochs
        self.last_fraction = last_fraction
        self._announced = False

    def epochs_without_distillation(self, max_epochs: int) -> int:
        """How many of the last epochs of a ``max_epochs`` run train on the task loss alone
        (the fraction rounded half up: 7.5 -> 8)."""
        return min(self.num_last_epochs, math.floor(max_epochs * self.last_fraction + 0.5))

    def schedule(self, max_epochs: int) -> Tuple[int, str]:
        """The stop epoch of a ``max_epochs`` run and a line that says which epochs distil."""
        last = self.epochs_without_distillation(max_epochs)
        stop = max_epochs - last
        if last == 0:
            line = f'distilling epochs 1-{max_epochs} of {max_epochs}'
        elif stop <= 0:
            line = (f'distilling no epoch of {max_epochs}: StopDistillLastEpochsHook '
                    f'(num_last_epochs={self.num_last_epochs}, last_fraction='
                    f'{self.last_fraction:.3g}) stops distillation for the whole run')
        else:
            line = (f'distilling epochs 1-{stop} of {max_epochs}; the last {last} train on '
                    f'the task loss alone (StopDistillLastEpochsHook: num_last_epochs='
                    f'{self.num_last_epochs}, last_fraction={self.last_fraction:.3g})')
        return stop, line

    def before_train(self, runner) -> None:
        """Fix the stop epoch from the run's real length, and say which epochs distil."""
        self.stop_epoch, line = self.schedule(runner.max_epochs)
        if self.stop_epoch <= 0:
            runner.logger.warning(line)
        else:
            runner.logger.info(line)

    def before_train_epoch(self, runner) -> None:
        """Stop distillation (once), and drop the stale ``distill.*`` scalars."""
        if runner.epoch < self.stop_epoch:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'distillation_stopped'):
            raise ConfigError(
                f'StopDistillLastEpochsHook is in the config of a {type(model).__name__}, '
                'which does not distil: remove it from custom_hooks (it belongs to '
                'distillation configs).')
        model.distillation_stopped = True
        if not self._announced:
            self._announced = True
            runner.logger.info(f'Distillation has been stopped! (from epoch '
                               f'{runner.epoch + 1} of {runner.max_epochs})')
            scalars = runner.message_hub.log_scalars
            for key in [k for k in scalars if k.startswith('train/distill.')]:
                del scalars[key]
