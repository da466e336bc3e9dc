"""Train a YOLOv5 student by distillation (or any mmyolo config) with mmengine's Runner.

    python tools/train.py configs/distill/yolov5/kd-out_yolov5_s-to-n-....py \
        --t-weights teacher.pth [--t-cfg teacher_config.py] [--d-output | --d-feature] \
        [--weights student_start.pt] [--data data.yaml] [--img-size 640] [--epochs 30]
"""
import argparse
import sys

# (importing mmkd_yolo applies its compat measures and registers its modules)
from mmkd_yolo.apis import (add_common_args, add_distill_args, build_runner, check_data_files,
                            init_distributed, prepare_train_cfg, schedule_summary,
                            set_local_rank)
from mmkd_yolo.errors import CheckpointError, ConfigError, DataError, NonFiniteLossError


def parse_args():
    parser = argparse.ArgumentParser(description='Distill a YOLOv5 teacher into a student')
    parser.add_argument('config', help='train config file (distillation or plain mmyolo)')
    add_distill_args(parser)
    parser.add_argument('--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a path from the newest complete one '
        'in the work dir')
    add_common_args(parser)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def main():
    args = parse_args()
    try:
        cfg = prepare_train_cfg(
            args.config, work_dir=args.work_dir, resume=args.resume, amp=args.amp,
            cfg_options=args.cfg_options, launcher=args.launcher,
            t_weights=args.t_weights, t_cfg=args.t_cfg,
            t_precision=args.t_precision, d_output=args.d_output,
            d_feature=args.d_feature, data=args.data, weights=args.weights,
            img_size=args.img_size, epochs=args.epochs, unlabeled=args.unlabeled,
            unlabeled_ratio=args.unlabeled_ratio, unlabeled_weight=args.unlabeled_weight,
            unlabeled_aug=args.unlabeled_aug,
            unlabeled_pseudo_labels=args.unlabeled_pseudo_labels)
        check_data_files(cfg, ('train_dataloader', 'val_dataloader'))
        init_distributed(cfg)
        runner = build_runner(cfg)
        runner.logger.info(f'schedule: {schedule_summary(cfg)}')
    except (ConfigError, CheckpointError, DataError) as e:
        sys.exit(f'error: {e}')
    try:
        runner.train()
    except NonFiniteLossError as e:
        sys.exit(f'error: training stopped: {e}')


if __name__ == '__main__':
    main()
