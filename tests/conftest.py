"""Shared fixtures: a generated dataset and quick-run overrides of the shipped configs."""
import os
import os.path as osp
import sys

import pytest


def pytest_configure(config):
    """Import the package (its compat measures and registries) before any test module.

    Not in pytest-xdist's controller process, which runs no test: the stack's import
    (~5 s) would delay starting the workers, each of which imports it anyway.
    """
    if config.getoption('numprocesses', None) and not hasattr(config, 'workerinput'):
        return
    import torch

    import mmkd_yolo  # noqa: F401
    if os.environ.get('PYTEST_XDIST_WORKER'):
        # one pytest-xdist worker per core: one torch thread each, in the worker and in
        # the training runs its tests start, or the thread pools fight over the same cores
        torch.set_num_threads(1)
        os.environ['OMP_NUM_THREADS'] = '1'


REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
CPU_TAIL = 'v61_fast_1xb16-40e_shapes-160.py'
KD_OUT_S2N = osp.join(CONFIGS, 'distill', 'yolov5', f'kd-out_yolov5_s-to-n-{CPU_TAIL}')
KD_OUT_N2N = osp.join(CONFIGS, 'distill', 'yolov5', f'kd-out_yolov5_n-to-n-{CPU_TAIL}')
KD_CWD_S2N = osp.join(CONFIGS, 'distill', 'yolov5', f'kd-out-cwd_yolov5_s-to-n-{CPU_TAIL}')
STUDENT_N = osp.join(CONFIGS, 'yolov5', f'yolov5_n-{CPU_TAIL}')
TEACHER_S = osp.join(CONFIGS, 'yolov5', f'yolov5_s-{CPU_TAIL}')


@pytest.fixture(scope='session')
def shapes_dir(tmp_path_factory):
    """A folder holding data/shapes/ (8 train, 4 val images of 64 px), as the configs expect."""
    from mmkd_yolo.datasets import make_shapes_dataset
    root = tmp_path_factory.mktemp('shapes_run')
    make_shapes_dataset(str(root / 'data' / 'shapes'), num_train=8, num_val=4, img_size=64,
                        seed=1)
    return root


def quick_options(work_dir, epochs=2, batch=4):
    """cfg-options that make a shipped config run in seconds on the generated data."""
    return {
        'work_dir': str(work_dir),
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.batch_size': batch,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
        'train_cfg.max_epochs': epochs,
        'train_cfg.val_interval': epochs,
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.logger.interval': 1,
        'default_hooks.param_scheduler.warmup_mim_iter': 2,
        'optim_wrapper.optimizer.batch_size_per_gpu': batch,
        'env_cfg.mp_cfg.mp_start_method': 'fork',
        'randomness.seed': 0,
    }


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End a pytest-xdist worker at once when it is done.

    Its results are with the controller by now (``workerfinished`` is sent at session
    finish); what is left is the interpreter's teardown of the stack's modules and
    objects, ~3 s that the controller waits for before it can end the run.
    """
    if hasattr(config, 'workerinput'):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
