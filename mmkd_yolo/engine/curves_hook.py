"""``<work_dir>/curves.png``: the run's losses, learning rate and val mAP, kept current."""
from __future__ import annotations

import json
import os
import os.path as osp
import re
from typing import Dict, Optional, Tuple

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from ..fileio import AtomicLocalBackend
from ..registry import HOOKS
from ..visualization.curves import Series, is_loss, is_lr, plot_curves

#: The validation metrics drawn (last part of the key): COCO's and Pascal VOC's.
MAP_METRICS = ('bbox_mAP', 'bbox_mAP_50', 'mAP', 'AP50')
_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')


@HOOKS.register_module()
class CurvesHook(Hook):
    """Draw ``<work_dir>/curves.png`` at each validation and at the end of training.

    Panels: the total loss and the detection parts, the distillation parts (``distill.*``)
    on their own, the learning rate, and val mAP (``coco/bbox_mAP``, ``coco/bbox_mAP_50``)
    per epoch. The points are those the ``LocalVisBackend`` wrote to
    ``<work_dir>/<timestamp>/vis_data/scalars.json``: read from the file rather than the
    message hub because the hub keeps no epoch per value, and loses the ``distill.*``
    history when distillation stops. After ``--resume`` the earlier timestamp folders of
    the work dir supply the part of the run before the resumed checkpoint
    (:func:`run_scalars`), so the picture shows the whole run.

    Only the main process draws; the file is written to a temporary name and renamed into
    place. A failure to draw is logged as a warning and training goes on.
    :func:`mmkd_yolo.apis.prepare_train_cfg` adds this hook to every training config
    unless the config sets ``curves = False``.

    Args:
        filename (str): Written in the work dir.

    Attributes:
        series (dict): ``name -> (x, y)`` of the last picture drawn.
    """

    priority = 'LOW'  # after the LoggerHook has written the validation's scalars

    def __init__(self, filename: str = 'curves.png') -> None:
        self.filename = filename
        self.series: Series = {}
        self._start: Optional[Tuple[int, int]] = None
        self._warned = False

    def before_train(self, runner) -> None:
        """Where this process starts the run: after ``--resume``, the checkpoint's
        iteration and epoch."""
        by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)
        self._start = (runner.iter, runner.epoch if by_epoch else runner.iter)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        """Draw, with this validation's mAP."""
        self.draw(runner)

    def after_train(self, runner) -> None:
        """Draw what was logged since the last validation."""
        self.draw(runner)

    def draw(self, runner) -> Series:
        """Write the picture (main process, during training); returns the series drawn."""
        if self._start is None or not is_main_process():
            return self.series
        try:
            by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)
            train, val = run_scalars(runner.work_dir, runner.log_dir, *self._start)
            if not train and not val:
                self._warn(runner, f'nothing logged in {runner.log_dir}/vis_data/'
                           'scalars.json (no LocalVisBackend in the visualizer?)')
                return self.series
            series = curve_series(train, val, len(runner.train_dataloader) if by_epoch else 1)
            if series != self.series:
                png = plot_curves(series, 'epoch' if by_epoch else 'iteration',
                                  osp.basename(osp.normpath(runner.work_dir)))
                AtomicLocalBackend().put(png, osp.join(runner.work_dir, self.filename))
                self.series = series
        except Exception as e:  # a picture is never worth a training run
            self._warn(runner, f'{type(e).__name__}: {e}')
        return self.series

    def _warn(self, runner, reason: str) -> None:
        if not self._warned:  # once: the same cause would repeat at every validation
            self._warned = True
            runner.logger.warning(f'CurvesHook: {self.filename} not drawn ({reason}); '
                                  'training goes on.')


def run_scalars(work_dir: str, log_dir: str, start_iter: int,
                start_step: int) -> Tuple[Dict[int, dict], Dict[int, dict]]:
    """The scalars logged by a run, also across resumes.

    ``log_dir`` (``<work_dir>/<timestamp>``) holds what this process logged; it started at
    ``start_iter`` (validations up to ``start_step``, an epoch or an iteration, done
    before). Each earlier timestamp folder, newest first, supplies the iterations before
    the start of the folder after it (the first one it logged), so a chain of resumes is
    followed back to the fresh start, and a fresh run (``start_iter == 0``) takes nothing
    from older runs of the same work dir.

    Returns:
        tuple[dict, dict]: Training records by iteration, validation records by step.
    """
    train, val = _read_scalars(log_dir)
    current = osp.basename(osp.normpath(log_dir))
    earlier = sorted(name for name in os.listdir(work_dir)
                     if _TIMESTAMP.match(name) and name < current)
    for name in reversed(earlier):
        if start_iter <= 0 and start_step <= 0:
            break
        old_train, old_val = _read_scalars(osp.join(work_dir, name))
        for it, rec in old_train.items():
            if it <= start_iter:
                train.setdefault(it, rec)
        for step, rec in old_val.items():
            if step <= start_step:
                val.setdefault(step, rec)
        if old_train:
            first = old_train[min(old_train)]
            start_iter = min(start_iter, first['iter'] - 1)
            start_step = min(start_step, first['epoch'] - 1 if 'epoch' in first
                             else first['iter'] - 1)
    return train, val


def _read_scalars(log_dir: str) -> Tuple[Dict[int, dict], Dict[int, dict]]:
    train: Dict[int, dict] = {}
    val: Dict[int, dict] = {}
    path = osp.join(log_dir, 'vis_data', 'scalars.json')
    if not osp.isfile(path):
        return train, val
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:  # the last line of a killed run
                continue
            if not isinstance(rec, dict) or 'step' not in rec:
                continue
            if 'iter' in rec:
                train[int(rec['iter'])] = rec
            else:
                val[int(rec['step'])] = rec
    return train, val


def curve_series(train: Dict[int, dict], val: Dict[int, dict],
                 iters_per_epoch: int = 1) -> Series:
    """``name -> (x, y)``: each logged loss and the learning rate by iteration (x in epochs:
    iteration / ``iters_per_epoch``), and val mAP by validation step."""
    series: Series = {}
    for it in sorted(train):
        for key, value in train[it].items():
            if is_loss(key) or is_lr(key):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(it / iters_per_epoch)
                ys.append(value)
    for step in sorted(val):
        for key, value in val[step].items():
            if key.split('/')[-1] in MAP_METRICS:
                xs, ys = series.setdefault(key, ([], []))
                xs.append(step)
                ys.append(value)
    return series
