"""From command-line choices to a Runner-ready config (the logic behind tools/*.py)."""
from __future__ import annotations

import logging
import os
import os.path as osp
from typing import Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..datasets.yolo_data import apply_data_yaml
from ..errors import ConfigError
from .checkpoints import find_resume_checkpoint
from .config import (apply_distill_switches, load_detector_cfg, package_config_path,
                     refit_connectors, resolve_detector_cfg)


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file (or ``mmyolo::...``), with a clear error for a missing one."""
    if '::' in path:
        path = package_config_path(path)
    if not osp.isfile(path):
        raise ConfigError(f'config file {path!r} does not exist; the ready ones are in '
                          'configs/distill/yolov5/.')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
        if any(key.startswith('custom_imports') for key in cfg_options):
            # Config.fromfile imported the file's own list before the override
            from mmengine.utils import import_modules_from_strings
            import_modules_from_strings(**cfg.custom_imports)
    return cfg


def is_distill_cfg(cfg: Config) -> bool:
    return 'teacher' in cfg.model and 'architecture' in cfg.model


def apply_teacher_args(cfg: Config, t_weights: Optional[str] = None,
                       t_cfg: Optional[str] = None) -> None:
    """``--t-weights`` / ``--t-cfg``: the teacher's weights and config."""
    if (t_weights or t_cfg) and not is_distill_cfg(cfg):
        raise ConfigError('--t-weights/--t-cfg need a distillation config '
                          '(configs/distill/yolov5/*.py), not a plain detector config.')
    if t_cfg:
        cfg.model.teacher = load_detector_cfg(t_cfg)
    if t_weights:
        if not osp.isfile(t_weights):
            raise ConfigError(f'teacher weights {t_weights!r} do not exist (--t-weights).')
        cfg.model.teacher_ckpt = t_weights


def prepare_train_cfg(config: str,
                      work_dir: Optional[str] = None,
                      resume: Optional[str] = None,
                      amp: bool = False,
                      cfg_options: Optional[dict] = None,
                      launcher: str = 'none',
                      t_weights: Optional[str] = None,
                      t_cfg: Optional[str] = None,
                      d_output: bool = False,
                      d_feature: bool = False,
                      data: Optional[str] = None,
                      weights: Optional[str] = None,
                      img_size: Optional[int] = None) -> Config:
    """Everything ``tools/train.py`` does to a config before the Runner is built.

    Args:
        config (str): Config file.
        work_dir (str, optional): Overrides the config's; default
            ``work_dirs/<config name>``.
        resume (str, optional): ``'auto'`` (latest checkpoint of work_dir) or a path.
        amp (bool): Mixed precision (``AmpOptimWrapper``).
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        launcher (str): ``none`` or ``pytorch`` (torchrun), ``slurm``, ``mpi``.
        t_weights (str, optional): Teacher weights.
        t_cfg (str, optional): Teacher config file (its ``model``).
        d_output (bool): Distill outputs only.
        d_feature (bool): Distill outputs and neck features.
        data (str, optional): An Ultralytics ``data.yaml``: datasets and class count.
        weights (str, optional): The student's starting weights.
        img_size (int, optional): Train and evaluate at this size (px).

    Returns:
        Config: Ready for ``Runner.from_cfg``.
    """
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    apply_teacher_args(cfg, t_weights, t_cfg)
    if data:
        apply_data_yaml(cfg, data)
    if img_size:
        set_img_size(cfg, img_size)
    if weights:
        apply_student_weights(cfg, weights)
    if d_output or d_feature:
        if not is_distill_cfg(cfg):
            raise ConfigError('--d-output/--d-feature need a distillation config '
                              '(configs/distill/yolov5/*.py).')
        apply_distill_switches(cfg, d_output=d_output, d_feature=d_feature)
    if t_cfg:
        refit_connectors(cfg)  # the config's connectors were for its own teacher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    if amp:
        if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
            print_log('AMP is already on in this config.', 'current', logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
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
    ckpt_hook = cfg.get('default_hooks', {}).get('checkpoint')
    if ckpt_hook and ckpt_hook.get('type', '').endswith('CheckpointHook') and not (
            ckpt_hook.get('backend_args') or ckpt_hook.get('file_client_args')):
        ckpt_hook['backend_args'] = dict(backend='atomic_local')  # never a partial file
    setup_distributed(cfg)
    return cfg


def setup_distributed(cfg: Config) -> None:
    """Make a torchrun launch work on CPU-only machines too (gloo), in place.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally, and
    DDP refuses SyncBN on CPU. Without CUDA the process group is therefore created here
    with gloo (the Runner then skips its own ``init_dist``) and SyncBN is switched off.
    With CUDA nothing changes: mmengine's NCCL path runs as usual.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.launcher != 'pytorch':
        raise ConfigError(f'--launcher {cfg.launcher} needs CUDA; on CPU use torchrun '
                          '(tools/dist_train.sh), i.e. --launcher pytorch.')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    models = [cfg.model]
    if is_distill_cfg(cfg):
        cfg.model.architecture = resolve_detector_cfg(cfg.model.architecture)
        cfg.model.teacher = resolve_detector_cfg(cfg.model.teacher)
        models = [cfg.model.architecture, cfg.model.teacher]
    for model in models:
        if 'use_syncbn' in model or model.get('type', '').endswith('YOLODetector'):
            model.use_syncbn = False


def _inner_dataset(loader_cfg: dict) -> dict:
    dataset = loader_cfg['dataset']
    while 'dataset' in dataset:  # dataset wrappers
        dataset = dataset['dataset']
    return dataset


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
    """Evaluate at ``size`` px: the test pipeline's resizes and the batch shapes."""
    for loader in ('val_dataloader', 'test_dataloader'):
        if loader not in cfg:
            continue
        dataset = _inner_dataset(cfg[loader])
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
    _set_transform_sizes(_inner_dataset(cfg.train_dataloader)['pipeline'], size)
    set_test_img_scale(cfg, size)
    factor = (size / old[0])**2
    for model in _detector_cfgs(cfg):
        loss_obj = model.get('bbox_head', {}).get('loss_obj')
        if loss_obj is not None and 'loss_weight' in loss_obj:
            loss_obj['loss_weight'] = loss_obj['loss_weight'] * factor
    cfg.img_scale = (size, size)


def _detector_cfgs(cfg: Config) -> list:
    """The detector configs of ``cfg.model``: student and teacher, or the plain model."""
    if is_distill_cfg(cfg):
        cfg.model.architecture = resolve_detector_cfg(cfg.model.architecture)
        cfg.model.teacher = resolve_detector_cfg(cfg.model.teacher)
        return [cfg.model.architecture, cfg.model.teacher]
    return [cfg.model]


def apply_student_weights(cfg: Config, path: str) -> None:
    """``--weights``: initialise the student (or a plain model) from a checkpoint.

    Takes an Ultralytics YOLOv5 ``.pt`` (converted once, without running its pickle, and
    cached), an mmyolo checkpoint or a distillation checkpoint (its student). Tensors are
    matched by name and shape (a head for another class count is left to train, as
    Ultralytics does when fine-tuning on new classes); mmengine logs what did not fit.
    Set as the detector's ``init_cfg``, so ``--resume`` still takes the run's own state.
    """
    from ..compat import load_checkpoint_file
    from ..converters import is_ultralytics_checkpoint, load_or_convert
    if not osp.isfile(path):
        raise ConfigError(f'student weights {path!r} do not exist (--weights).')
    if is_ultralytics_checkpoint(path):
        ckpt, path = load_or_convert(path)
    else:
        ckpt = load_checkpoint_file(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    init = dict(type='Pretrained', checkpoint=path)
    if any(str(k).startswith('architecture.') for k in state):
        init['prefix'] = 'architecture.'  # a distillation checkpoint: its student
    model = _detector_cfgs(cfg)[0]
    model['init_cfg'] = init


def set_local_rank(local_rank: int) -> None:
    """torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))


def add_common_args(parser, skip: Sequence[str] = ()) -> None:
    """Arguments shared by tools/train.py and tools/test.py, in OpenMMLab's form."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (e.g. train_cfg.max_epochs=3)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (dist_*.sh set pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
