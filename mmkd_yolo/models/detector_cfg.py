"""Facts about mmyolo's YOLOv5 detectors, and reading a detector config by path.

The one place for: YOLOv5 sizes by width factor, the names of mmyolo's YOLOv5 configs,
where the neck outputs live, the neck widths of a config, and ``dict(cfg_path=...)``
detector configs (a teacher or student given as a config file).
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import List, Union

from mmengine.config import Config, ConfigDict

from ..errors import ConfigError

#: Where the neck outputs of an mmyolo YOLOv5 live (strides 8, 16, 32).
NECK_SOURCES = tuple(f'neck.out_layers.{i}' for i in range(3))

#: YOLOv5 size letter by ``widen_factor``.
YOLOV5_SIZES = {0.25: 'n', 0.5: 's', 0.75: 'm', 1.0: 'l', 1.25: 'x'}


def yolov5_size(widen_factor: float) -> str:
    """``'n'``, ``'s'``, ... for a width factor; ``'?'`` for a custom one."""
    return YOLOV5_SIZES.get(round(float(widen_factor), 4), '?')


def mmyolo_yolov5_config(size: str) -> str:
    """mmyolo's COCO config of a YOLOv5 size, as a ``mmyolo::`` path."""
    return f'mmyolo::yolov5/yolov5_{size}-v61_syncbn_fast_8xb16-300e_coco.py'


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
    from mmengine.utils import is_installed

    from ..compat import installed_package_path
    package, rel = cfg_path.split('::', 1)
    if not is_installed(package):
        raise ConfigError(f'{cfg_path!r} names package {package!r}, which is not installed.')
    return osp.join(installed_package_path(package), '.mim', 'configs', rel)


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
