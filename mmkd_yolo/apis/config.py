"""Config edits behind the command-line options: load, teacher, student weights, sizes."""
from __future__ import annotations

import os.path as osp
from typing import List, Optional

from mmengine.config import Config, ConfigDict
from torch import nn

from ..datasets.dataset_cfg import leaf_datasets
from ..errors import ConfigError
from ..models.detector_cfg import (load_detector_cfg, package_config_path,
                                   resolve_detector_cfg)


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file (or ``mmyolo::...`` / ``mmkd_yolo::...``) with its overrides,
    detectors resolved.

    ``dict(cfg_path=...)`` teacher / student configs are read here, once, so every later
    edit sees the detector configs themselves.

    Args:
        path (str): A config file, or ``<package>::path/in/its/configs.py`` (mmyolo's,
            or this package's own: ``mmkd_yolo::distill/yolov5/<name>.py``).
        cfg_options (dict, optional): ``--cfg-options`` overrides.

    Returns:
        Config: The config.
    """
    if '::' in path:
        path = package_config_path(path)
    if not osp.isfile(path):
        raise ConfigError(f'config file {path!r} does not exist; the ready ones are in '
                          'configs/distill/yolov5/ and configs/yolov5/ (installed: '
                          "'mmkd_yolo::distill/yolov5/<name>.py').")
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
        if any(key.startswith('custom_imports') for key in cfg_options):
            # Config.fromfile imported the file's own list before the override
            from mmengine.utils import import_modules_from_strings
            import_modules_from_strings(**cfg.custom_imports)
    if is_distill_cfg(cfg):
        cfg.model.architecture = resolve_detector_cfg(cfg.model.architecture)
        cfg.model.teacher = resolve_detector_cfg(cfg.model.teacher)
    return cfg


def type_name(cfg: dict) -> str:
    """A config dict's ``type`` without its scope prefix
    (``'mmkd_yolo.StopDistillLastEpochsHook'`` -> ``'StopDistillLastEpochsHook'``)."""
    return cfg.get('type', '').split('.')[-1]


def is_distill_cfg(cfg: Config) -> bool:
    """Whether ``cfg`` is a distillation config (a student and a teacher)."""
    model = cfg.get('model') or {}
    return 'architecture' in model and 'teacher' in model


def detector_cfgs(cfg: Config) -> List[ConfigDict]:
    """The detector configs of ``cfg.model``: student and teacher, or the plain model."""
    if is_distill_cfg(cfg):
        return [cfg.model.architecture, cfg.model.teacher]
    return [cfg.model]


def default_work_dir(config: str) -> str:
    """``work_dirs/<config name>``, as OpenMMLab's tools name it."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])


def apply_teacher_args(cfg: Config, t_weights: Optional[str] = None,
                       t_cfg: Optional[str] = None,
                       t_precision: Optional[str] = None) -> None:
    """``--t-weights`` / ``--t-cfg`` / ``--t-precision``: the teacher's weights, config
    and forward precision."""
    if (t_weights or t_cfg or t_precision) and not is_distill_cfg(cfg):
        raise ConfigError('--t-weights/--t-cfg/--t-precision need a distillation config '
                          '(configs/distill/yolov5/*.py), not a plain detector config.')
    if t_precision:
        cfg.model.teacher_precision = t_precision
    if t_cfg:
        cfg.model.teacher = load_detector_cfg(t_cfg)
    if t_weights:
        if not osp.isfile(t_weights):
            raise ConfigError(f'teacher weights {t_weights!r} do not exist (--t-weights).')
        cfg.model.teacher_ckpt = t_weights


def build_detector(model_cfg: dict, default_scope: str = 'mmyolo') -> nn.Module:
    """The detector of a model config (mmyolo's registry unless the config says)."""
    from ..registry import MODELS
    model_cfg = dict(model_cfg)
    model_cfg.pop('init_cfg', None)
    model_cfg.setdefault('_scope_', default_scope)
    return MODELS.build(model_cfg)


def apply_student_weights(cfg: Config, path: str) -> None:
    """``--weights``: initialise the student (or a plain model) from a checkpoint.

    Takes an Ultralytics YOLOv5 ``.pt`` (converted once, without running its pickle, and
    cached), an mmyolo checkpoint or a distillation checkpoint (its student, EMA weights):
    :func:`mmkd_yolo.converters.read_detector_weights` decides which. Tensors are matched
    by name and shape (the ``'init'`` policy: a head for another class count is left to
    train, as Ultralytics does when fine-tuning on new classes; nothing fitting is an
    error). Set as the detector's ``init_cfg``, so ``--resume`` still takes the run's own
    state.
    """
    from mmengine.logging import print_log

    from ..converters import detector_checkpoint_file, fit_detector, read_detector_weights
    if not osp.isfile(path):
        raise ConfigError(f'student weights {path!r} do not exist (--weights).')
    weights = read_detector_weights(path)
    detector = detector_cfgs(cfg)[0]
    model = build_detector(detector, cfg.get('default_scope') or 'mmyolo')
    report = fit_detector(model, weights, 'init', 'the student (--weights)')
    own = model.state_dict()
    print_log(f'--weights: {weights.describe()}: {len(report.fit)}/{len(own)} tensors fit '
              'by name and shape' + (f'; left to train: {len(report.missing)} '
                                     f'(e.g. {report.missing[:3]})' if report.missing else ''),
              'current')
    detector['init_cfg'] = dict(type='Pretrained', checkpoint=detector_checkpoint_file(weights))


def inner_dataset(loader_cfg: dict) -> dict:
    """The dataset config of a dataloader config, inside any dataset wrappers; of a
    ``ConcatDataset``, the first (under ``--unlabeled``: the labeled set), whose
    pipeline and classes are taken for the whole (:func:`leaf_datasets` for all)."""
    return leaf_datasets(loader_cfg['dataset'])[0]


def _set_transform_sizes(transforms: list, size: int) -> None:
    """Sizes in a pipeline, also inside nested ``pre_transform`` lists (MixUp's Mosaic)."""
    for transform in transforms:
        if 'img_scale' in transform:
            transform['img_scale'] = (size, size)
        if 'scale' in transform:
            transform['scale'] = (size, size)
        if transform.get('type', '').endswith('YOLOv5RandomAffine') and 'border' in transform:
            transform['border'] = (-size // 2, -size // 2)
        if isinstance(transform.get('pre_transform'), list):
            _set_transform_sizes(transform['pre_transform'], size)


def set_test_img_scale(cfg: Config, size: int) -> None:
    """Evaluate at ``size`` px: the val/test pipelines' resizes and the batch shapes."""
    for loader in ('val_dataloader', 'test_dataloader'):
        if not cfg.get(loader):
            continue
        for dataset in leaf_datasets(cfg[loader]['dataset']):
            _set_transform_sizes(dataset['pipeline'], size)
            if dataset.get('batch_shapes_cfg'):
                dataset['batch_shapes_cfg']['img_size'] = size


def set_img_size(cfg: Config, size: int) -> None:
    """``--img-size``: train and evaluate at ``size`` px, as Ultralytics' ``--img``.

    Sets the train pipeline (Mosaic, random-affine border, resizes), the val/test
    pipelines and batch shapes, and rescales the objectness loss weight by
    ``(size / old size)**2``, the factor mmyolo's YOLOv5 configs compute from
    ``img_scale`` when they are parsed (too early for a command-line change).
    """
    if size <= 0 or size % 32:
        raise ConfigError(f'--img-size {size}: must be a positive multiple of 32 (the '
                          'largest YOLOv5 stride).')
    old = cfg.get('img_scale')
    if old is None:
        raise ConfigError('--img-size needs a config with `img_scale` (mmyolo YOLOv5 '
                          'configs and those in configs/ have it).')
    for dataset in leaf_datasets(cfg.train_dataloader['dataset']):
        _set_transform_sizes(dataset['pipeline'], size)
    set_test_img_scale(cfg, size)
    factor = (size / old[0])**2
    for model in detector_cfgs(cfg):
        loss_obj = model.get('bbox_head', {}).get('loss_obj')
        if loss_obj is not None and 'loss_weight' in loss_obj:
            loss_obj['loss_weight'] = loss_obj['loss_weight'] * factor
    cfg.img_scale = (size, size)
