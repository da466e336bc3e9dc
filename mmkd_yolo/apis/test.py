"""From ``tools/test.py``'s options to a Runner-ready config."""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmengine.config import Config

from ..errors import CheckpointError
from .config import default_work_dir, load_config, set_test_img_scale
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
    from ..converters import is_ultralytics_checkpoint, load_or_convert
    if is_ultralytics_checkpoint(checkpoint):  # converted once, cached, never unpickled
        checkpoint = load_or_convert(checkpoint)[1]
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or default_work_dir(config)
    cfg.load_from = checkpoint
    if data:
        apply_data_yaml(cfg, data, splits=('val', ))
    if img_size:
        set_test_img_scale(cfg, img_size)
    return cfg
