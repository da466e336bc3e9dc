"""Evaluate a checkpoint (the student of a distillation run, or an mmyolo model): COCO mAP.

    python tools/test.py CONFIG CHECKPOINT [--data data.yaml] [--img-size 640]
        [--work-dir DIR] [--cfg-options k=v ...]
"""
import argparse
import sys

from mmkd_yolo.apis import (add_common_args, build_runner, check_data_files, init_distributed,
                            prepare_test_cfg, set_local_rank)
from mmkd_yolo.errors import CheckpointError, ConfigError, DataError


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
        cfg = prepare_test_cfg(args.config, args.checkpoint, work_dir=args.work_dir,
                               cfg_options=args.cfg_options, launcher=args.launcher,
                               data=args.data, img_size=args.img_size)
        check_data_files(cfg, ('test_dataloader', ))
        init_distributed(cfg)
        runner = build_runner(cfg)
        return runner.test()
    except (ConfigError, CheckpointError, DataError) as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
