"""mmyolo's YOLOv5 learning-rate schedule, fitted to the run: its decay over the run's
length, its warm-up inside short runs."""
from __future__ import annotations

import logging

from mmengine.logging import print_log
from mmyolo.engine.hooks import YOLOv5ParamSchedulerHook

from ..registry import HOOKS


@HOOKS.register_module()
class ScaledWarmupParamSchedulerHook(YOLOv5ParamSchedulerHook):
    """``YOLOv5ParamSchedulerHook`` that decays over the run's length and whose warm-up
    takes at most a fraction of the run.

    mmyolo's hook decays the learning rate over its own ``max_epochs`` (300 in the COCO
    configs), set when the config is written: ``--cfg-options train_cfg.max_epochs=30``
    shortens the run but not the decay, and a 30-epoch fine-tune ends at ~0.9x the base
    rate instead of ``lr_factor`` x it, without a word. Here the decay is rebuilt at the
    start of training from the run's real length (``runner.max_epochs``); a configured
    ``max_epochs`` that differs is named in the log.

    mmyolo warms up for ``max(warmup_epochs x iterations per epoch, warmup_mim_iter)``
    iterations, at least 1000 in its COCO configs. A fine-tune of 30 epochs on a small set
    (120 iterations) then never leaves the warm-up: the weights' learning rate stays
    near 0 (1.2e-3 at the end instead of 1e-2) while the biases train at up to 0.1 the
    whole run, and nothing says so. Here the warm-up is cut to ``max_fraction`` of the
    run's iterations when it would be longer, with a warning that names both numbers;
    runs whose warm-up fits (mmyolo's 300-epoch COCO schedule, the demo) are unchanged.
    :func:`mmkd_yolo.apis.prepare_train_cfg` puts it in place of mmyolo's hook, for plain
    and distillation runs alike.

    Args:
        max_fraction (float): Longest warm-up, as a fraction of the run's iterations.
            Defaults to 1/3.
        **kwargs: Those of mmyolo's ``YOLOv5ParamSchedulerHook``.
    """

    def __init__(self,
                 max_fraction: float = 1 / 3,
                 scheduler_type: str = 'linear',
                 lr_factor: float = 0.01,
                 max_epochs: int = 300,
                 **kwargs) -> None:
        if not 0 < max_fraction <= 1:
            raise ValueError(f'max_fraction must be in (0, 1], got {max_fraction}')
        super().__init__(scheduler_type=scheduler_type, lr_factor=lr_factor,
                         max_epochs=max_epochs, **kwargs)
        self.max_fraction = max_fraction
        self.scheduler_type, self.lr_factor, self.max_epochs = (scheduler_type, lr_factor,
                                                                max_epochs)

    def before_train(self, runner) -> None:
        """Fit the decay and the warm-up into the run, and say how long they are."""
        super().before_train(runner)
        if self.max_epochs != runner.max_epochs:
            print_log(
                f'learning-rate decay over the run\'s {runner.max_epochs} epochs (towards '
                f'{self.lr_factor:g}x), not the {self.max_epochs} that the '
                'param_scheduler hook was configured with', 'current')
            self.max_epochs = runner.max_epochs
            self.scheduler_fn = self.scheduler_maps[self.scheduler_type](
                lr_factor=self.lr_factor, max_epochs=self.max_epochs)
        per_epoch = len(runner.train_dataloader)
        total = runner.max_epochs * per_epoch
        warmup = max(round(self.warmup_epochs * per_epoch), self.warmup_mim_iter)
        longest = max(int(total * self.max_fraction), 1)
        if warmup > longest:
            print_log(
                f'warm-up of {warmup} iterations (mmyolo: max(warmup_epochs={self.warmup_epochs}'
                f' x {per_epoch}, warmup_mim_iter={self.warmup_mim_iter})) would take '
                f'{warmup / total:.0%} of this {total}-iteration run: cut to {longest} '
                f'(max_fraction={self.max_fraction:.3g}), so that the learning rate reaches '
                'its value', 'current', logging.WARNING)
            self.warmup_epochs, self.warmup_mim_iter = 0, longest
        else:
            print_log(f'warm-up: {warmup} of {total} iterations', 'current')
