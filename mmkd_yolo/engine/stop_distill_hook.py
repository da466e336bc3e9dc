"""Stop distillation a number of epochs before the end of training, however long it is."""
from __future__ import annotations

from mmrazor.engine import StopDistillHook

from ..registry import HOOKS


@HOOKS.register_module()
class StopDistillLastEpochsHook(StopDistillHook):
    """mmrazor's ``StopDistillHook``, with the stop epoch counted from the end.

    mmrazor's hook takes an absolute ``stop_epoch``, written into a config as
    ``max_epochs - 5``. Overriding ``train_cfg.max_epochs`` (a shorter run, the demo, a
    fine-tuning schedule) then leaves distillation on to the end, or stops it at once.
    This one computes ``stop_epoch = runner.max_epochs - num_last_epochs`` when training
    starts, so the last ``num_last_epochs`` epochs always train on the task loss alone.

    Args:
        num_last_epochs (int): Epochs at the end trained without distillation.
    """

    def __init__(self, num_last_epochs: int) -> None:
        if num_last_epochs < 0:
            raise ValueError(f'num_last_epochs must be >= 0, got {num_last_epochs}')
        super().__init__(stop_epoch=-1)
        self.num_last_epochs = num_last_epochs

    def before_train(self, runner) -> None:
        """Fix the stop epoch from the run's real length."""
        self.stop_epoch = runner.max_epochs - self.num_last_epochs
        runner.logger.info(f'distillation stops after epoch {self.stop_epoch} of '
                           f'{runner.max_epochs} (the last {self.num_last_epochs} train on '
                           'the task loss alone)')
