"""Train a YOLOv5 student by distillation (or any mmyolo config) with mmengine's Runner.

    python tools/train.py configs/distill/yolov5/kd-out_yolov5_s-to-n-....py \
        --t-weights teacher.pth [--t-cfg teacher_config.py] [--d-output | --d-feature]
"""
import argparse
import sys

# (importing mmkd_yolo applies its compat measures and registers its modules)
from mmkd_yolo.errors import CheckpointError, ConfigError, DataError, NonFiniteLossError
from mmkd_yolo.utils.setup import add_common_args, prepare_train_cfg, set_local_rank


def parse_args():
    parser = argparse.ArgumentParser(description='Distill a YOLOv5 teacher into a student')
    parser.add_argument('config', help='train config file')
    parser.add_argument('--t-weights', metavar='PATH',
                        help="teacher weights (sets the config's model.teacher_ckpt)")
    parser.add_argument('--t-cfg', metavar='CONFIG',
                        help="teacher config file; its model replaces model.teacher")
    parser.add_argument('--data', metavar='DATA_YAML',
                        help='Ultralytics data.yaml: train/val sets and class count of '
                        'student and teacher')
    parser.add_argument('--weights', metavar='PATH',
                        help="the student's starting weights (Ultralytics .pt or mmyolo / "
                        'distillation checkpoint)')
    parser.add_argument('--img-size', type=int, metavar='N',
                        help='train and evaluate at N px (pipelines and loss weights)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--d-output', action='store_true',
                      help='distill the head outputs only (drops feature parts)')
    mode.add_argument('--d-feature', action='store_true',
                      help='distill the head outputs and the neck features '
                      '(ChannelWiseDivergence, connectors where widths differ)')
    parser.add_argument('--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a path from the latest one in '
        'the work dir')
    add_common_args(parser)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def main():
    args = parse_args()
    try:
        from mmengine.runner import Runner
        cfg = prepare_train_cfg(
            args.config, work_dir=args.work_dir, resume=args.resume, amp=args.amp,
            cfg_options=args.cfg_options, launcher=args.launcher,
            t_weights=args.t_weights, t_cfg=args.t_cfg, d_output=args.d_output,
            d_feature=args.d_feature, data=args.data,
            weights=args.weights, img_size=args.img_size)
        runner = Runner.from_cfg(cfg)
    except (ConfigError, CheckpointError, DataError) as e:
        sys.exit(f'error: {e}')
    try:
        runner.train()
    except NonFiniteLossError as e:
        sys.exit(f'error: training stopped: {e}')


if __name__ == '__main__':
    main()
