"""Starting a run: the distributed process group (an explicit step) and the Runner."""
from __future__ import annotations

import os

import torch
from mmengine.config import Config

from ..compat import init_cpu_process_group
from ..errors import ConfigError
from .config import detector_cfgs


def init_distributed(cfg: Config) -> None:
    """Prepare a multi-process launch, in place; nothing to do for ``launcher='none'``.

    With CUDA, mmengine's own NCCL start-up runs in the Runner as usual. Without it (a
    torchrun launch on CPUs, e.g. the tests) the gloo process group is started here and
    SyncBN is switched off (DDP refuses SyncBN on CPU).
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise ConfigError(f'--launcher {cfg.launcher} needs CUDA; on CPU use torchrun '
                          '(tools/dist_train.sh), i.e. --launcher pytorch.')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    init_cpu_process_group()
    for model in detector_cfgs(cfg):
        if 'use_syncbn' in model or model.get('type', '').endswith('YOLODetector'):
            model.use_syncbn = False


def build_runner(cfg: Config):
    """The Runner of ``cfg``: mmengine's, or the config's ``runner_type`` (as mmyolo's
    tools do)."""
    if 'runner_type' not in cfg:
        from mmengine.runner import Runner
        return Runner.from_cfg(cfg)
    from mmengine.registry import RUNNERS
    return RUNNERS.build(cfg)


def set_local_rank(local_rank: int) -> None:
    """torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))
