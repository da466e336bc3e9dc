"""From ``tools/train.py``'s options to a Runner-ready config."""
from __future__ import annotations

import logging
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config
from mmengine.logging import print_log

from ..errors import ConfigError
from ..evaluation import use_empty_safe_coco_metric
from ..fileio import find_resume_checkpoint
from .config import (apply_student_weights, apply_teacher_args, default_work_dir,
                     is_distill_cfg, load_config, set_img_size, type_name)
from .data import apply_data_yaml
from .distill_switches import apply_distill_switches, refit_connectors
from .loaders import fit_loaders_to_machine
from .schedule import apply_epochs
from .unlabeled import apply_unlabeled


def prepare_train_cfg(config: str,
                      work_dir: Optional[str] = None,
                      resume: Optional[str] = None,
                      amp: bool = False,
                      cfg_options: Optional[dict] = None,
                      launcher: str = 'none',
                      t_weights: Optional[str] = None,
                      t_cfg: Optional[str] = None,
                      t_precision: Optional[str] = None,
                      d_output: bool = False,
                      d_feature: bool = False,
                      data: Optional[str] = None,
                      weights: Optional[str] = None,
                      img_size: Optional[int] = None,
                      epochs: Optional[int] = None,
                      unlabeled: Optional[Sequence[str]] = None,
                      unlabeled_ratio: Optional[float] = None,
                      unlabeled_weight: Optional[float] = None,
                      unlabeled_aug: Optional[str] = None,
                      unlabeled_pseudo_labels: Optional[float] = None) -> Config:
    """Everything ``tools/train.py`` does to a config before the Runner is built.

    No side effects beyond the config (and cached conversions): a multi-process launch
    is started by :func:`init_distributed`, a separate step.

    Args:
        config (str): Config file (distillation, or a plain detector config).
        work_dir (str, optional): Overrides the config's; default
            ``work_dirs/<config name>``.
        resume (str, optional): ``'auto'`` (newest complete checkpoint of work_dir) or a
            path.
        amp (bool): Mixed precision (``AmpOptimWrapper``).
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        launcher (str): ``none`` or ``pytorch`` (torchrun), ``slurm``, ``mpi``.
        t_weights (str, optional): Teacher weights.
        t_cfg (str, optional): Teacher config file (its ``model``).
        t_precision (str, optional): What runs the teacher forward (``auto``, ``fp32``,
            ``bf16``, ``fp16``, ``ort``); None keeps the config's.
        d_output (bool): Distill outputs only.
        d_feature (bool): Distill outputs and neck features.
        data (str, optional): An Ultralytics ``data.yaml``: datasets and class count.
        weights (str, optional): The student's starting weights.
        img_size (int, optional): Train and evaluate at this size (px).
        epochs (int, optional): The run's length, with everything that counts in epochs
            fitted (:func:`~mmkd_yolo.apis.schedule.apply_epochs`).
        unlabeled (Sequence[str], optional): Images without labels to distil on
            (folders, globs, ``.txt`` lists), added to a ``data.yaml``'s ``unlabeled``.
        unlabeled_ratio (float, optional): Their share of each batch (default
            :data:`DEFAULT_UNLABELED_RATIO`).
        unlabeled_weight (float, optional): Their weight in the output-distillation loss.
        unlabeled_aug (str, optional): The student's view of them, ``strong`` or ``none``.
        unlabeled_pseudo_labels (float, optional): Least score of a teacher's box kept
            as their detection target. These three, when None, leave the config's own
            ``model`` values, or the defaults where it has none
            (:func:`~mmkd_yolo.apis.unlabeled.apply_unlabeled`).

    Returns:
        Config: Ready for :func:`build_runner`.
    """
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    if epochs is not None:
        apply_epochs(cfg, epochs)
    apply_teacher_args(cfg, t_weights, t_cfg, t_precision)
    sources = list(unlabeled or [])
    if data:
        listed = apply_data_yaml(cfg, data)['unlabeled']
        if listed and not is_distill_cfg(cfg):
            print_log(f'{data}: its unlabeled images are not used: {config} is a plain '
                      'detector config (they need a teacher).', 'current', logging.WARNING)
        elif listed:
            sources += listed
    if img_size:
        set_img_size(cfg, img_size)
    if weights:
        apply_student_weights(cfg, weights)
    if d_output or d_feature:
        apply_distill_switches(cfg, d_output=d_output, d_feature=d_feature)
    if t_cfg:
        refit_connectors(cfg)  # the config's connectors were for its own teacher
    unlabeled_opts = {'--unlabeled-ratio': unlabeled_ratio, '--unlabeled-weight':
                      unlabeled_weight, '--unlabeled-aug': unlabeled_aug,
                      '--unlabeled-pseudo-labels': unlabeled_pseudo_labels}
    if sources:
        # None passed through: an option not given leaves the config's own value
        apply_unlabeled(cfg, sources, unlabeled_ratio, unlabeled_weight, unlabeled_aug,
                        unlabeled_pseudo_labels)
    elif any(v is not None for v in unlabeled_opts.values()):
        given = [k for k, v in unlabeled_opts.items() if v is not None]
        raise ConfigError(f'{", ".join(given)}, but no unlabeled images are used: give them '
                          'with --unlabeled PATH (or unlabeled: in the data.yaml) to a '
                          'distillation config.')
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(config)
    if amp:
        if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
            print_log('AMP is already on in this config.', 'current', logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    _set_resume(cfg, resume)
    use_empty_safe_coco_metric(cfg)  # a model that detects nothing scores 0.0, not nothing
    hooks = cfg.setdefault('custom_hooks', [])
    if not any(type_name(h) == 'NonFiniteLossHook' for h in hooks):
        hooks.append(dict(type='mmkd_yolo.NonFiniteLossHook'))  # plain runs too
    _set_curves_hook(cfg)
    scheduler = cfg.get('default_hooks', {}).get('param_scheduler')
    if scheduler and type_name(scheduler) == 'YOLOv5ParamSchedulerHook':
        scheduler['type'] = 'mmkd_yolo.ScaledWarmupParamSchedulerHook'  # short runs warm up
    ckpt_hook = cfg.get('default_hooks', {}).get('checkpoint')
    if ckpt_hook and ckpt_hook.get('type', '').endswith('CheckpointHook') and not (
            ckpt_hook.get('backend_args') or ckpt_hook.get('file_client_args')):
        ckpt_hook['backend_args'] = dict(backend='atomic_local')  # never a partial file
    fit_loaders_to_machine(cfg)
    return cfg


def _set_curves_hook(cfg: Config) -> None:
    """``CurvesHook`` (``curves.png``) for every run, unless the config says
    ``curves = False`` (``--cfg-options curves=False``), which also removes one it lists."""
    def is_curves(hook):
        return type_name(hook) == 'CurvesHook'

    hooks = cfg.setdefault('custom_hooks', [])
    if not cfg.get('curves', True):
        cfg.custom_hooks = [h for h in hooks if not is_curves(h)]
    elif not any(is_curves(h) for h in hooks):
        hooks.append(dict(type='mmkd_yolo.CurvesHook'))


def _set_resume(cfg: Config, resume: Optional[str]) -> None:
    if resume == 'auto':
        # mmengine trusts work_dir/last_checkpoint; take the newest *complete* one instead
        latest = find_resume_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
        if latest:
            print_log(f'resuming from {latest}', 'current')
            cfg.resume, cfg.load_from = True, latest
        else:
            print_log(f'--resume: no checkpoint in {cfg.work_dir}, starting anew', 'current',
                      logging.WARNING)
            cfg.resume, cfg.load_from = False, None
    elif resume is not None:
        if not osp.isfile(resume):
            raise ConfigError(f'--resume {resume!r}: no such checkpoint.')
        cfg.resume = True
        cfg.load_from = resume
