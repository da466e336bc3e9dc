"""Evaluate a checkpoint (the student of a distillation run, or an mmyolo model): COCO mAP.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
"""
import argparse
import os.path as osp
import sys

from mmkd_yolo.errors import CheckpointError, ConfigError, DataError
from mmkd_yolo.datasets import apply_data_yaml
from mmkd_yolo.utils.setup import (add_common_args, load_config, set_local_rank,
                                   set_test_img_scale, setup_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate a YOLOv5 checkpoint (COCO mAP)')
    parser.add_argument('config', help='config file (distillation or mmyolo)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--data', metavar='DATA_YAML',
                        help='Ultralytics data.yaml: evaluate on its val set')
    parser.add_argument('--img-size', type=int, help='evaluate at this size (px)')
    add_common_args(parser)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def main():
    args = parse_args()
    try:
        from mmengine.runner import Runner
        if not osp.isfile(args.checkpoint):
            raise CheckpointError(f'checkpoint {args.checkpoint!r} does not exist.')
        cfg = load_config(args.config, args.cfg_options)
        cfg.launcher = args.launcher
        cfg.work_dir = args.work_dir or osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0])
        cfg.load_from = args.checkpoint
        if args.data:
            apply_data_yaml(cfg, args.data, splits=('val', ))
        if args.img_size:
            set_test_img_scale(cfg, args.img_size)
        setup_distributed(cfg)
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
    except (ConfigError, CheckpointError, DataError) as e:
        sys.exit(f'error: {e}')
    return metrics


if __name__ == '__main__':
    main()
