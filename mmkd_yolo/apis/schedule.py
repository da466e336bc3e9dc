"""A run's length in epochs, and everything that counts in epochs with it (``--epochs``)."""
from __future__ import annotations

from typing import Optional

from mmengine.config import Config

from ..errors import ConfigError
from .config import type_name

#: mmyolo's YOLOv5 schedule hook and ours (its warm-up cut for short runs)
_YOLOV5_SCHEDULERS = ('YOLOv5ParamSchedulerHook', 'ScaledWarmupParamSchedulerHook')


def apply_epochs(cfg: Config, epochs: int) -> None:
    """``--epochs N``: train for ``N`` epochs, with every epoch count of the config fitted.

    The OpenMMLab way to shorten a run, ``train_cfg.max_epochs=N``, leaves the rest of a
    YOLOv5 config counting to its own length: the learning-rate decay of
    ``YOLOv5ParamSchedulerHook`` keeps ``max_epochs=300`` (our scheduler hook now follows
    the run's length at start, whatever it says) and validation and checkpoint intervals
    may be longer than the run. This sets them all:

    - ``train_cfg.max_epochs`` and the scheduler hook's ``max_epochs`` (the LR decay);
    - ``train_cfg.val_interval`` and ``default_hooks.checkpoint.interval``, when longer
      than the run, to ``N`` (one validation and checkpoint, at the end);
    - the warm-up cap and ``StopDistillLastEpochsHook``'s stop follow ``N`` at start.

    Args:
        cfg (Config): The training config, edited in place.
        epochs (int): The run's length.

    Raises:
        ConfigError: ``epochs`` < 1, or a config that is not trained by epochs.
    """
    if epochs < 1:
        raise ConfigError(f'--epochs {epochs}: a run needs at least 1 epoch.')
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_epochs' not in train_cfg:
        raise ConfigError(f'--epochs: this config trains by iterations ({train_cfg}), not '
                          'epochs; set its length with --cfg-options train_cfg.max_iters=N.')
    train_cfg['max_epochs'] = epochs
    if train_cfg.get('val_interval', 1) > epochs:
        train_cfg['val_interval'] = epochs
    hooks = cfg.get('default_hooks') or {}
    scheduler = hooks.get('param_scheduler')
    if scheduler and type_name(scheduler) in _YOLOV5_SCHEDULERS:
        scheduler['max_epochs'] = epochs
    checkpoint = hooks.get('checkpoint')
    if checkpoint and checkpoint.get('by_epoch', True) and checkpoint.get('interval', 1) > epochs:
        checkpoint['interval'] = epochs


def schedule_summary(cfg: Config) -> str:
    """One line on what the run's length sets, as the training will do it.

    Args:
        cfg (Config): A training config (after every command-line change).

    Returns:
        str: e.g. ``'30 epochs: LR linear decay to 0.01x over 30 epochs, warm-up at most
        1/3 of the run; validation every 10, checkpoint every 10; distilling epochs 1-28
        of 30; ...'``.
    """
    train_cfg = cfg.get('train_cfg') or {}
    epochs = train_cfg.get('max_epochs')
    if epochs is None:
        return f'schedule: by iterations ({train_cfg.get("max_iters")}), not epochs'
    parts = [f'{epochs} epochs']
    scheduler = (cfg.get('default_hooks') or {}).get('param_scheduler') or {}
    if type_name(scheduler) in _YOLOV5_SCHEDULERS:
        parts.append(f'LR {scheduler.get("scheduler_type", "linear")} decay to '
                     f'{scheduler.get("lr_factor", 0.01):g}x over {epochs} epochs')
    if type_name(scheduler) == 'ScaledWarmupParamSchedulerHook':
        parts.append(f'warm-up at most {scheduler.get("max_fraction", 1 / 3):.2g} of the run')
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    parts.append(f'validation every {train_cfg.get("val_interval", 1)}, checkpoint every '
                 f'{checkpoint.get("interval", 1)} (and at the end)')
    distill = distill_schedule(cfg)
    if distill:
        parts.append(distill)
    return '; '.join(parts)


def distill_schedule(cfg: Config) -> Optional[str]:
    """Which epochs of ``cfg``'s training distil, as the training log will say it; None
    for a plain detector config."""
    from ..engine import StopDistillLastEpochsHook
    from .config import is_distill_cfg
    if not is_distill_cfg(cfg):
        return None
    max_epochs = cfg.get('train_cfg', {}).get('max_epochs')
    if max_epochs is None:
        return 'distillation schedule: not epoch-based (no train_cfg.max_epochs)'
    for hook in cfg.get('custom_hooks', []):
        if type_name(hook) == 'StopDistillLastEpochsHook':
            args = {k: v for k, v in hook.items() if k not in ('type', 'priority')}
            return StopDistillLastEpochsHook(**args).schedule(max_epochs)[1]
        if type_name(hook) == 'StopDistillHook':
            return (f"distilling epochs 1-{min(hook['stop_epoch'], max_epochs)} of "
                    f"{max_epochs} (mmrazor's StopDistillHook: stop_epoch="
                    f"{hook['stop_epoch']}, absolute, not scaled to the run)")
    return f'distilling epochs 1-{max_epochs} of {max_epochs} (no StopDistillLastEpochsHook)'
