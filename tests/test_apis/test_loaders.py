"""Loader settings fitted to the machine: workers capped at its cores, no pinning without
a device, each said in one info line."""
import logging
import os

import pytest
import torch
from mmengine.config import Config

from mmkd_yolo.apis import prepare_train_cfg
from mmkd_yolo.apis.loaders import available_cpus, fit_loaders_to_machine

from ..helpers.logs import logged

MMYOLO_N = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'


def _cfg(**workers):
    return Config({f'{key}_dataloader': dict(num_workers=n, pin_memory=True, batch_size=2)
                   for key, n in workers.items()})


def test_workers_capped_and_pinning_off_in_one_line_each():
    cfg = _cfg(train=8, val=6, test=2)
    with logged('loaders_test') as records:
        fit_loaders_to_machine(cfg, cpus=3, accelerator=False)
    assert [cfg[f'{k}_dataloader'].num_workers for k in ('train', 'val', 'test')] == [3, 3, 2]
    assert not any(cfg[f'{k}_dataloader'].pin_memory for k in ('train', 'val', 'test'))
    assert [r.getMessage() for r in records] == [
        'train_dataloader, val_dataloader: 6/8 workers asked, 3 CPU core(s) per process '
        'here: capped at 3',
        'train_dataloader, val_dataloader, test_dataloader: pin_memory off (no CUDA or '
        'other accelerator here)']
    assert all(r.levelno == logging.INFO for r in records)


def test_a_machine_that_has_enough_is_left_alone():
    cfg = _cfg(train=8, val=2)
    with logged('loaders_enough_test') as records:
        fit_loaders_to_machine(cfg, cpus=16, accelerator=True)
    assert (cfg.train_dataloader.num_workers, cfg.val_dataloader.num_workers) == (8, 2)
    assert cfg.train_dataloader.pin_memory and cfg.val_dataloader.pin_memory
    assert records == []


def test_only_the_loaders_named():
    cfg = _cfg(train=8, test=8)
    fit_loaders_to_machine(cfg, ('test_dataloader', ), cpus=2, accelerator=False)
    assert (cfg.train_dataloader.num_workers, cfg.test_dataloader.num_workers) == (8, 2)
    assert cfg.train_dataloader.pin_memory and not cfg.test_dataloader.pin_memory


def test_cores_shared_among_a_launch_processes(monkeypatch):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '3')
    assert available_cpus() == 2
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '16')
    assert available_cpus() == 1  # never no worker at all


def test_mmyolo_config_fitted_by_prepare_train_cfg(tmp_path, monkeypatch):
    """mmyolo's COCO configs ask for 8 train workers and pinned memory."""
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    monkeypatch.setattr(torch.accelerator, 'is_available', lambda: False)
    cfg = prepare_train_cfg(MMYOLO_N, work_dir=str(tmp_path))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].num_workers <= 2, key
        assert cfg[key].pin_memory is False, key
    assert cfg.train_dataloader.num_workers == 2


@pytest.mark.parametrize('accelerator', [True, False])
def test_pinning_follows_the_device(accelerator, monkeypatch):
    monkeypatch.setattr(torch.accelerator, 'is_available', lambda: accelerator)
    cfg = _cfg(train=1)
    fit_loaders_to_machine(cfg, cpus=4)
    assert cfg.train_dataloader.pin_memory is accelerator
