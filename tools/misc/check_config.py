"""Dry-run a distillation config in seconds: build, one generated batch, a summary.

    python tools/misc/check_config.py CONFIG [--t-weights W] [--t-cfg C] [--data D]
        [--weights W] [--d-output | --d-feature] [--img-size 320] [--epochs N]
        [--unlabeled PATH [--unlabeled-pseudo-labels SCORE]] [--cfg-options k=v ...]

Prints the schedule (length, learning-rate decay, intervals, which epochs distil),
teacher and student sizes (parameters, GFLOPs), each recorder's source and recorded
shape, each connector's channels, each loss value and what the teacher load transferred.
A config that cannot work fails here with an error that says what to change.
"""
import argparse
import sys

from mmengine.config import DictAction

from mmkd_yolo.apis import add_distill_args, dry_run, is_distill_cfg, prepare_train_cfg
from mmkd_yolo.errors import CheckpointError, ConfigError, DataError, NonFiniteLossError


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    add_distill_args(parser)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config overrides, as for tools/train.py (a shorter run: --epochs N)')
    args = parser.parse_args()

    from mmengine.logging import MMLogger
    MMLogger.get_instance('check_config', log_level='INFO')
    img_size = args.img_size or 320
    try:
        cfg = prepare_train_cfg(args.config, cfg_options=args.cfg_options,
                                t_weights=args.t_weights, t_cfg=args.t_cfg,
                                t_precision=args.t_precision,
                                d_output=args.d_output, d_feature=args.d_feature,
                                data=args.data, weights=args.weights, img_size=args.img_size,
                                epochs=args.epochs,
                                unlabeled=args.unlabeled,
                                unlabeled_ratio=args.unlabeled_ratio,
                                unlabeled_weight=args.unlabeled_weight,
                                unlabeled_aug=args.unlabeled_aug,
                                unlabeled_pseudo_labels=args.unlabeled_pseudo_labels)
        if not is_distill_cfg(cfg):
            raise ConfigError(f'{args.config} is not a distillation config (no teacher).')
        lines = dry_run(cfg, img_size=img_size, batch_size=args.batch_size)
    except (ConfigError, CheckpointError, DataError, NonFiniteLossError) as e:
        sys.exit(f'error: {e}')
    print(f'\n{args.config}')
    for line in lines:
        print(f'  {line}')


if __name__ == '__main__':
    main()
