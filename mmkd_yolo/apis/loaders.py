"""Data loader settings that depend on the machine, fitted to it as Ultralytics fits them."""
from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import print_log

LOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def available_cpus() -> int:
    """This process's share of the CPU cores it may run on (at least one).

    The cores are its affinity where the OS reports one (what torch's warning counts),
    shared among the processes a launcher started on this machine (``LOCAL_WORLD_SIZE``).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (
        os.cpu_count() or 1)
    return max(1, cores // int(os.environ.get('LOCAL_WORLD_SIZE', '1')))


def has_accelerator() -> bool:
    """Whether torch has a device to pin memory for (CUDA, MPS, XPU, ...)."""
    accelerator = getattr(torch, 'accelerator', None)  # torch >= 2.6
    if accelerator is not None:
        return accelerator.is_available()
    return torch.cuda.is_available()


def fit_loaders_to_machine(cfg: Config,
                           keys: Sequence[str] = LOADER_KEYS,
                           cpus: Optional[int] = None,
                           accelerator: Optional[bool] = None) -> None:
    """Cap the loaders' workers at the cores there are; no pinned memory without a device.

    mmyolo's configs ask for 8 workers and ``pin_memory=True``, written for GPU servers.
    On a smaller machine torch warns on every loader it builds (more workers than cores,
    pinning with no device) and the surplus workers only compete for the cores. As
    Ultralytics does, the config is fitted instead, and each change is said in one info
    line. Loaders that ask for no more than the machine has are left as they are.

    Args:
        cfg (Config): A Runner config; its loaders are changed.
        keys (Sequence[str]): The loaders the run builds (default: train, val, test).
        cpus (int, optional): Most workers per loader; default :func:`available_cpus`.
        accelerator (bool, optional): Whether there is a device to pin memory for;
            default :func:`has_accelerator`.
    """
    cpus = available_cpus() if cpus is None else cpus
    accelerator = has_accelerator() if accelerator is None else accelerator
    loaders = {key: cfg[key] for key in keys if cfg.get(key)}
    capped = [key for key, loader in loaders.items() if loader.get('num_workers', 0) > cpus]
    asked = sorted({loaders[key].num_workers for key in capped})
    for key in capped:
        loaders[key].num_workers = cpus
    if capped:
        print_log(f'{", ".join(capped)}: {"/".join(map(str, asked))} workers asked, '
                  f'{cpus} CPU core(s) per process here: capped at {cpus}', 'current',
                  logging.INFO)
    pinned = [key for key, loader in loaders.items() if loader.get('pin_memory')]
    if pinned and not accelerator:
        for key in pinned:
            loaders[key].pin_memory = False
        print_log(f'{", ".join(pinned)}: pin_memory off (no CUDA or other accelerator here)',
                  'current', logging.INFO)
