"""Evaluate a checkpoint (the student of a distillation run, or an mmyolo model): COCO mAP,
and AP per class (in the log, and as markdown in the run's folder of the work dir).

    python tools/test.py CONFIG CHECKPOINT [--data data.yaml] [--img-size 640]
        [--show-dir DIR] [--json-prefix PREFIX] [--work-dir DIR] [--cfg-options k=v ...]
"""
import argparse
import os.path as osp
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
    parser.add_argument('--show-dir', metavar='DIR',
                        help='draw ground truth and predictions on each val image into DIR')
    parser.add_argument('--json-prefix', metavar='PREFIX',
                        help='also write the predictions as COCO json: PREFIX.bbox.json')
    add_common_args(parser)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def write_per_class(runner, metrics: dict, checkpoint: str) -> None:
    """The per-class AP as a markdown table, beside the run's log (mmdet's metric prints
    its own table in the log)."""
    from mmengine.dist import is_main_process

    from mmkd_yolo.analysis import load_val_set, val_set_files, write_per_class_ap
    if not is_main_process() or not any(k.endswith('_precision') for k in metrics):
        return
    path = osp.join(runner.log_dir, 'per_class_ap.md')
    write_per_class_ap(path, checkpoint, load_val_set(*val_set_files(runner.cfg)), metrics)
    print(f'per-class AP: {path}')


def main():
    args = parse_args()
    try:
        cfg = prepare_test_cfg(args.config, args.checkpoint, work_dir=args.work_dir,
                               cfg_options=args.cfg_options, launcher=args.launcher,
                               data=args.data, img_size=args.img_size,
                               show_dir=args.show_dir, json_prefix=args.json_prefix)
        check_data_files(cfg, ('test_dataloader', ))
        init_distributed(cfg)
        runner = build_runner(cfg)
        metrics = runner.test()
    except (ConfigError, CheckpointError, DataError) as e:
        sys.exit(f'error: {e}')
    write_per_class(runner, metrics, args.checkpoint)
    return metrics


if __name__ == '__main__':
    main()
