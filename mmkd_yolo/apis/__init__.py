"""The top layer: command-line choices -> a Runner-ready config (what tools/ call)."""
from .args import add_common_args, add_distill_args
from .config import (apply_student_weights, apply_teacher_args, default_work_dir,
                     is_distill_cfg, load_config, set_img_size, set_test_img_scale)
from .data import apply_data_yaml, check_data_files
from .distill_switches import apply_distill_switches, refit_connectors
from .dry_run import dry_run
from .launch import build_runner, init_distributed, set_local_rank
from .schedule import apply_epochs, schedule_summary
from .test import prepare_test_cfg
from .train import prepare_train_cfg

__all__ = ['add_common_args', 'add_distill_args', 'apply_student_weights',
           'apply_teacher_args', 'default_work_dir', 'is_distill_cfg', 'load_config',
           'set_img_size', 'set_test_img_scale', 'apply_data_yaml', 'check_data_files',
           'apply_distill_switches', 'refit_connectors', 'dry_run', 'build_runner',
           'init_distributed', 'set_local_rank', 'prepare_test_cfg', 'prepare_train_cfg',
           'apply_epochs', 'schedule_summary']
