"""Config helpers: teacher configs given by path, and the YOLOv5 distillation switches.

The switches are those of the YOLOv5 distillation scripts: ``--d-output`` distills the
head outputs only, ``--d-feature`` the outputs and the neck features.
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import List, Union

from mmengine.config import Config, ConfigDict

from ..errors import ConfigError

#: Where the neck outputs and head predictions of an mmyolo YOLOv5 live.
NECK_SOURCES = tuple(f'neck.out_layers.{i}' for i in range(3))


def load_detector_cfg(cfg_path: str) -> ConfigDict:
    """The ``model`` of a detector config file, ready to build in its own scope.

    Args:
        cfg_path (str): A config file, or ``mmyolo::path/in/mmyolo/configs.py``.

    Returns:
        ConfigDict: The model config, with ``_scope_`` set (default ``mmyolo``).
    """
    path = package_config_path(cfg_path) if '::' in cfg_path else cfg_path
    if not osp.isfile(path):
        raise ConfigError(f'detector config {cfg_path!r} does not exist; give a config '
                          "file or an mmyolo one as 'mmyolo::yolov5/<name>.py'.")
    cfg = Config.fromfile(path)
    model = cfg.get('model')
    if model is None:
        raise ConfigError(f'{cfg_path!r} defines no `model`.')
    if 'architecture' in model:  # a distillation config: its student is the detector
        model = model['architecture']
    model = copy.deepcopy(model)
    model.setdefault('_scope_', cfg.get('default_scope', 'mmyolo'))
    return model


def package_config_path(cfg_path: str) -> str:
    """``'mmyolo::yolov5/x.py'`` -> the file inside the installed package.

    (``mmengine.hub.get_config`` does the same but pip-installs a missing package.)
    """
    from mmengine.utils import get_installed_path, is_installed
    package, rel = cfg_path.split('::', 1)
    if not is_installed(package):
        raise ConfigError(f'{cfg_path!r} names package {package!r}, which is not installed.')
    return osp.join(get_installed_path(package), '.mim', 'configs', rel)


def resolve_detector_cfg(model_cfg: Union[dict, ConfigDict]) -> ConfigDict:
    """Turn ``dict(cfg_path=...)`` into the model config it names; others unchanged."""
    if isinstance(model_cfg, dict) and 'cfg_path' in model_cfg and 'type' not in model_cfg:
        return load_detector_cfg(model_cfg['cfg_path'])
    return model_cfg


def neck_widths(model_cfg: dict) -> List[int]:
    """Channels of the three neck outputs of an mmyolo YOLOv5 model config."""
    from mmyolo.models.utils import make_divisible
    neck = model_cfg['neck']
    return [make_divisible(c, neck.get('widen_factor', 1.0)) for c in neck['out_channels']]


def apply_distill_switches(cfg: Config, d_output: bool = False, d_feature: bool = False,
                           feature_loss_weight: float = 1.0) -> None:
    """Set what a :class:`YOLOv5Distill` config distills, in place.

    Args:
        cfg (Config): A distillation config (``model.type == 'YOLOv5Distill'``).
        d_output (bool): Head outputs only: drop any feature parts.
        d_feature (bool): Head outputs and the three neck outputs
            (ChannelWiseDivergence; 1x1 connectors where student and teacher widths
            differ). Parts the config already has are kept.
        feature_loss_weight (float): ``loss_weight`` of each added CWD loss.
    """
    if d_output and d_feature:
        raise ConfigError('--d-output and --d-feature exclude each other: --d-output '
                          'distills outputs only, --d-feature outputs and features.')
    model = cfg.model
    if 'distiller' not in model or 'architecture' not in model:
        raise ConfigError(
            'this is not a distillation config (no model.distiller / model.architecture); '
            'start from one in configs/distill/yolov5/.')
    distiller = model.distiller
    names = ('student_recorders', 'teacher_recorders', 'connectors', 'distill_losses',
             'loss_forward_mappings')
    for key in names:
        distiller.setdefault(key, {})
    if d_output:
        neck_recorders = {
            k for k, v in distiller.student_recorders.items() if v.get('source') in NECK_SOURCES
        }
        feature_losses = {
            name for name, mapping in distiller.loss_forward_mappings.items()
            if any(arg.get('recorder') in neck_recorders for arg in mapping.values())
        }
        for key in ('student_recorders', 'teacher_recorders'):
            distiller[key] = {k: v for k, v in distiller[key].items() if k not in neck_recorders}
        for key in ('distill_losses', 'loss_forward_mappings'):
            distiller[key] = {k: v for k, v in distiller[key].items() if k not in feature_losses}
        distiller.connectors = {}
    if d_feature and not any(
            v.get('source') in NECK_SOURCES for v in distiller.student_recorders.values()):
        for i, source in enumerate(NECK_SOURCES):
            rec = dict(type='ModuleOutputs', source=source)
            distiller.student_recorders[f'neck{i}'] = rec
            distiller.teacher_recorders[f'neck{i}'] = copy.deepcopy(rec)
            distiller.distill_losses[f'loss_cwd{i}'] = dict(
                type='ChannelWiseDivergence', tau=1.0, loss_weight=feature_loss_weight)
            distiller.loss_forward_mappings[f'loss_cwd{i}'] = dict(
                preds_S=dict(from_student=True, recorder=f'neck{i}'),
                preds_T=dict(from_student=False, recorder=f'neck{i}'))
        refit_connectors(cfg)


def refit_connectors(cfg: Config) -> None:
    """Make the neck-feature connectors fit the student's and teacher's widths, in place.

    After ``--t-cfg`` (or any change of teacher or student), the connectors written for the
    original pair no longer fit: each student neck record that feeds a loss gets a 1x1
    connector from its width to the teacher's when they differ, and none when they agree.
    """
    model = cfg.model
    distiller = model.distiller
    recorders = distiller.get('student_recorders', {})
    neck_index = {name: NECK_SOURCES.index(rec['source']) for name, rec in recorders.items()
                  if rec.get('source') in NECK_SOURCES}
    if not neck_index:
        return
    s_widths = neck_widths(resolve_detector_cfg(model.architecture))
    t_widths = neck_widths(resolve_detector_cfg(model.teacher))
    if 'connectors' not in distiller:
        distiller.connectors = {}
    connectors = distiller.connectors  # (ConfigDict.setdefault returns a detached dict)
    used = set()
    for mapping in distiller.get('loss_forward_mappings', {}).values():
        for arg in mapping.values():
            if not arg.get('from_student') or arg.get('recorder') not in neck_index:
                continue
            i = neck_index[arg['recorder']]
            if s_widths[i] == t_widths[i]:
                arg.pop('connector', None)
                continue
            name = arg.setdefault('connector', f'{arg["recorder"]}_s')
            used.add(name)
            if name not in connectors:
                connectors[name] = dict(
                    type='ConvModuleConnector', kernel_size=1, norm_cfg=None, act_cfg=None)
            connectors[name].update(in_channel=s_widths[i], out_channel=t_widths[i])
    for name in [n for n in connectors if n not in used]:
        connectors.pop(name)
