"""From ``tools/test.py``'s options to a Runner-ready config."""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmengine.config import Config

from mmengine.logging import print_log

from ..errors import CheckpointError
from .config import (build_detector, default_work_dir, detector_cfgs, is_distill_cfg,
                     load_config, set_test_img_scale)
from .data import apply_data_yaml


def prepare_test_cfg(config: str,
                     checkpoint: str,
                     work_dir: Optional[str] = None,
                     cfg_options: Optional[dict] = None,
                     launcher: str = 'none',
                     data: Optional[str] = None,
                     img_size: Optional[int] = None) -> Config:
    """Everything ``tools/test.py`` does to a config before the Runner is built.

    Args:
        config (str): Config file (distillation: its student is evaluated; or mmyolo).
        checkpoint (str): The weights to evaluate (also an Ultralytics YOLOv5 ``.pt``).
        work_dir (str, optional): Default ``work_dirs/<config name>``.
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        launcher (str): ``none`` or ``pytorch`` (torchrun), ``slurm``, ``mpi``.
        data (str, optional): An Ultralytics ``data.yaml``: evaluate on its val split.
        img_size (int, optional): Evaluate at this size (px).

    Returns:
        Config: Ready for :func:`build_runner`.
    """
    if not osp.isfile(checkpoint):
        raise CheckpointError(f'checkpoint {checkpoint!r} does not exist.')
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or default_work_dir(config)
    if data:
        apply_data_yaml(cfg, data, splits=('val', ))
    if img_size:
        set_test_img_scale(cfg, img_size)
    cfg.load_from = _evaluated_weights(cfg, config, checkpoint)
    return cfg


def _evaluated_weights(cfg: Config, config: str, checkpoint: str) -> str:
    """Make ``cfg`` evaluate the detector (a distillation config: its student) and return
    the file that holds exactly its weights.

    mmengine's Runner loads ``load_from`` with ``strict=False`` and only logs the keys
    that did not fit: a distillation checkpoint given with the student's config (every
    key missing) or another architecture would be scored with random weights. Here the
    checkpoint is read once, whatever it is (:func:`read_detector_weights`: Ultralytics
    ``.pt``, detector, or distillation checkpoint, whose student is taken, EMA weights
    first), and must fit the detector exactly (the ``'evaluate'`` policy).
    """
    from ..converters import detector_checkpoint_file, fit_detector, read_detector_weights
    detector = detector_cfgs(cfg)[0]
    scope = cfg.get('default_scope') or 'mmyolo'
    weights = read_detector_weights(checkpoint)
    model = build_detector(detector, scope)
    role = 'the student of' if is_distill_cfg(cfg) else 'the detector of'
    fit_detector(model, weights, 'evaluate', f'{role} {config!r}')
    if is_distill_cfg(cfg):
        # evaluating the student alone: the teacher plays no part in its predictions
        cfg.model = dict(detector, _scope_=detector.get('_scope_', scope))
        cfg.model.pop('init_cfg', None)
    print_log(f'tools/test.py: evaluating {weights.describe()}', 'current')
    return detector_checkpoint_file(weights)
