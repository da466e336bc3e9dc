"""From ``tools/test.py``'s options to a Runner-ready config."""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from ..errors import CheckpointError, ConfigError
from ..evaluation import use_empty_safe_coco_metric
from .config import (build_detector, default_work_dir, detector_cfgs, is_distill_cfg,
                     load_config, set_test_img_scale)
from .data import apply_data_yaml
from .loaders import fit_loaders_to_machine


def prepare_test_cfg(config: str,
                     checkpoint: str,
                     work_dir: Optional[str] = None,
                     cfg_options: Optional[dict] = None,
                     launcher: str = 'none',
                     data: Optional[str] = None,
                     img_size: Optional[int] = None,
                     show_dir: Optional[str] = None,
                     json_prefix: Optional[str] = None) -> Config:
    """Everything ``tools/test.py`` does to a config before the Runner is built.

    Args:
        config (str): Config file (distillation: its student is evaluated; or mmyolo).
        checkpoint (str): The weights to evaluate (also an Ultralytics YOLOv5 ``.pt``).
        work_dir (str, optional): Default ``work_dirs/<config name>``.
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        launcher (str): ``none`` or ``pytorch`` (torchrun), ``slurm``, ``mpi``.
        data (str, optional): An Ultralytics ``data.yaml``: evaluate on its val split.
        img_size (int, optional): Evaluate at this size (px).
        show_dir (str, optional): Draw each val image's ground truth and predictions
            into this folder (:func:`load_test_cfg`).
        json_prefix (str, optional): Also write the predictions as COCO json,
            ``<json_prefix>.bbox.json``.

    Returns:
        Config: Ready for :func:`build_runner`.
    """
    if not osp.isfile(checkpoint):
        raise CheckpointError(f'checkpoint {checkpoint!r} does not exist.')
    cfg = load_test_cfg(config, work_dir=work_dir, cfg_options=cfg_options,
                        launcher=launcher, data=data, img_size=img_size, show_dir=show_dir,
                        json_prefix=json_prefix)
    from ..converters import read_detector_weights
    cfg.load_from = evaluated_weights(cfg, config, read_detector_weights(checkpoint))
    return cfg


def load_test_cfg(config: str,
                  work_dir: Optional[str] = None,
                  cfg_options: Optional[dict] = None,
                  launcher: str = 'none',
                  data: Optional[str] = None,
                  img_size: Optional[int] = None,
                  show_dir: Optional[str] = None,
                  json_prefix: Optional[str] = None) -> Config:
    """:func:`prepare_test_cfg`'s config before any weights are chosen (its arguments).

    The COCO metric is made class-wise (mmdet's ``CocoMetric(classwise=True)``: a
    per-class AP table in the log, ``coco/<class>_precision`` in the metrics).
    ``show_dir`` switches on the config's ``DetVisualizationHook`` as mmdet's and
    mmyolo's ``tools/test.py --show-dir`` do, except that the folder is taken as given
    (relative to the current directory): the hook would put a relative folder under
    ``work_dir/<timestamp>/``, joined again at every batch.
    """
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or default_work_dir(config)
    if data:
        apply_data_yaml(cfg, data, splits=('val', ))
    if img_size:
        set_test_img_scale(cfg, img_size)
    evaluators = cfg.get('test_evaluator') or []
    for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
        if evaluator.get('type', '').endswith('CocoMetric'):
            evaluator['classwise'] = True
            if json_prefix:  # (mmengine's dump creates its folder)
                evaluator['outfile_prefix'] = json_prefix
    use_empty_safe_coco_metric(cfg)  # a model that detects nothing scores 0.0, not nothing
    fit_loaders_to_machine(cfg, ('test_dataloader', ))
    if show_dir:
        hook = cfg.get('default_hooks', {}).get('visualization')
        if hook is None:
            raise ConfigError(
                f'--show-dir needs a visualization hook in {config!r}: add '
                "default_hooks = dict(visualization=dict(type='mmdet.DetVisualizationHook')) "
                '(mmyolo configs have it).')
        hook.update(draw=True, test_out_dir=osp.abspath(show_dir))
    return cfg


def evaluated_weights(cfg: Config, config: str, weights) -> str:
    """Make ``cfg`` evaluate the detector (a distillation config: its student) and return
    the file that holds exactly its weights.

    mmengine's Runner loads ``load_from`` with ``strict=False`` and only logs the keys
    that did not fit: a distillation checkpoint given with the student's config (every
    key missing) or another architecture would be scored with random weights. Here the
    checkpoint's weights (:func:`~mmkd_yolo.converters.read_detector_weights`: Ultralytics
    ``.pt``, detector, or distillation checkpoint, whose student is taken, EMA weights
    first) must fit the detector exactly (the ``'evaluate'`` policy).

    Args:
        cfg (Config): From :func:`load_test_cfg`; a distillation config's model becomes its
            student.
        config (str): The config file, to name it in errors.
        weights (DetectorWeights): The checkpoint's, as read.
    """
    from ..converters import detector_checkpoint_file, fit_detector
    detector = detector_cfgs(cfg)[0]
    scope = cfg.get('default_scope') or 'mmyolo'
    model = build_detector(detector, scope)
    role = 'the student of' if is_distill_cfg(cfg) else 'the detector of'
    fit_detector(model, weights, 'evaluate', f'{role} {config!r}')
    if is_distill_cfg(cfg):
        # evaluating the student alone: the teacher plays no part in its predictions
        cfg.model = dict(detector, _scope_=detector.get('_scope_', scope))
        cfg.model.pop('init_cfg', None)
    print_log(f'evaluating {weights.describe()}', 'current')
    return detector_checkpoint_file(weights)
