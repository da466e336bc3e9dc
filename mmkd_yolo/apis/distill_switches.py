"""The YOLOv5 distillation scripts' switches, as edits of a distillation config.

``--d-output`` distills the head outputs only, ``--d-feature`` the outputs and the neck
features. The feature recipe is not restated here: it is the ``kd_*`` pieces of
``configs/_base_/distill/yolov5_kd.py``, which every distillation config inherits.
"""
from __future__ import annotations

import copy

from mmengine.config import Config

from ..errors import ConfigError
from ..models.detector_cfg import NECK_SOURCES, neck_widths
from .config import is_distill_cfg

#: The recipe pieces ``--d-feature`` takes from the config (from yolov5_kd.py).
FEATURE_RECIPE = ('kd_neck_recorders', 'kd_cwd_losses', 'kd_cwd_mappings', 'kd_connector')


def apply_distill_switches(cfg: Config, d_output: bool = False,
                           d_feature: bool = False) -> None:
    """Set what a :class:`YOLOv5Distill` config distills, in place.

    Args:
        cfg (Config): A distillation config, loaded by :func:`load_config`.
        d_output (bool): Head outputs only: drop any feature parts.
        d_feature (bool): Head outputs and the three neck outputs with the config's
            feature recipe (``kd_cwd_losses``: ChannelWiseDivergence), and 1x1 connectors
            where student and teacher widths differ. Parts the config already has are
            kept.
    """
    if d_output and d_feature:
        raise ConfigError('--d-output and --d-feature exclude each other: --d-output '
                          'distills outputs only, --d-feature outputs and features.')
    if not is_distill_cfg(cfg):
        raise ConfigError(
            '--d-output/--d-feature need a distillation config (model.architecture, '
            'model.teacher); start from one in configs/distill/yolov5/.')
    distiller = cfg.model.distiller
    for key in ('student_recorders', 'teacher_recorders', 'connectors', 'distill_losses',
                'loss_forward_mappings'):
        distiller.setdefault(key, {})
    neck_recorders = {k for k, v in distiller.student_recorders.items()
                      if v.get('source') in NECK_SOURCES}
    if d_output:
        feature_losses = {
            name for name, mapping in distiller.loss_forward_mappings.items()
            if any(arg.get('recorder') in neck_recorders for arg in mapping.values())
        }
        for key in ('student_recorders', 'teacher_recorders'):
            distiller[key] = {k: v for k, v in distiller[key].items() if k not in neck_recorders}
        for key in ('distill_losses', 'loss_forward_mappings'):
            distiller[key] = {k: v for k, v in distiller[key].items() if k not in feature_losses}
        distiller.connectors = {}
    if d_feature and not neck_recorders:
        missing = [k for k in FEATURE_RECIPE if k not in cfg]
        if missing:
            raise ConfigError(
                f'--d-feature takes the feature recipe from the config, which lacks '
                f'{missing}: inherit configs/_base_/distill/yolov5_kd.py in its _base_.')
        distiller.student_recorders.update(copy.deepcopy(cfg.kd_neck_recorders))
        distiller.teacher_recorders.update(copy.deepcopy(cfg.kd_neck_recorders))
        distiller.distill_losses.update(copy.deepcopy(cfg.kd_cwd_losses))
        distiller.loss_forward_mappings.update(copy.deepcopy(cfg.kd_cwd_mappings))
        refit_connectors(cfg)


def refit_connectors(cfg: Config) -> None:
    """Make the neck-feature connectors fit the student's and teacher's widths, in place.

    After ``--t-cfg`` (or any change of teacher or student), the connectors written for the
    original pair no longer fit: each student neck record that feeds a loss gets a 1x1
    connector from its width to the teacher's when they differ (``cfg.kd_connector``),
    and none when they agree.
    """
    model = cfg.model
    distiller = model.distiller
    recorders = distiller.get('student_recorders', {})
    neck_index = {name: NECK_SOURCES.index(rec['source']) for name, rec in recorders.items()
                  if rec.get('source') in NECK_SOURCES}
    if not neck_index:
        return
    s_widths = neck_widths(model.architecture)
    t_widths = neck_widths(model.teacher)
    if 'connectors' not in distiller:
        distiller.connectors = {}
    connectors = distiller.connectors  # (ConfigDict.setdefault returns a detached dict)
    connector = cfg.get('kd_connector', dict(
        type='ConvModuleConnector', kernel_size=1, norm_cfg=None, act_cfg=None))
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
                connectors[name] = copy.deepcopy(connector)
            connectors[name].update(in_channel=s_widths[i], out_channel=t_widths[i])
    for name in [n for n in connectors if n not in used]:
        connectors.pop(name)
