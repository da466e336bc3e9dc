"""What did distillation buy? Two or more checkpoints on the same val set, side by side.

    python tools/analysis_tools/compare_checkpoints.py \\
        CONFIG_A CKPT_A CONFIG_B CKPT_B [CONFIG_C CKPT_C ...] --out DIR \\
        [--names plain distilled teacher] [--data data.yaml] [--img-size N]

Each checkpoint (distillation, mmyolo or Ultralytics YOLOv5 ``.pt``) is evaluated with its
config exactly as ``tools/test.py`` evaluates it. ``DIR/compare.md``: mAP, mAP@.5, AP by
object size, per-class AP side by side with the difference to the first model, the
classes gained and lost most, parameters, GFLOPs and CPU ms per image; ``DIR/compare.png``:
the val images where the models disagree most, ground truth and each model's boxes.
"""
import argparse
import sys

from mmkd_yolo.analysis import compare_checkpoints, default_names, results_table
from mmkd_yolo.errors import CheckpointError, ConfigError, DataError


def parse_args():
    parser = argparse.ArgumentParser(
        description='Evaluate checkpoints on the same val set and write compare.md and '
        'compare.png (the first checkpoint is the reference)')
    parser.add_argument('models', nargs='+', metavar='CONFIG CHECKPOINT',
                        help='a config and a checkpoint per model, two or more models')
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='where compare.md, compare.png and each model\'s test log and '
                        'predictions go')
    parser.add_argument('--names', nargs='+', metavar='NAME',
                        help='a name per model (default: the checkpoint file names)')
    parser.add_argument('--data', metavar='DATA_YAML',
                        help='Ultralytics data.yaml: evaluate all on its val set')
    parser.add_argument('--img-size', type=int, metavar='N',
                        help='evaluate all at N px (default: the configs\' test size)')
    parser.add_argument('--num-images', type=int, default=4,
                        help='val images in compare.png (default: %(default)s)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='least score of a box drawn and counted in compare.png '
                        '(default: %(default)s)')
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, key=value')
    args = parser.parse_args()
    if len(args.models) % 2 or len(args.models) < 4:
        parser.error('give CONFIG CHECKPOINT pairs, two or more: CONFIG_A CKPT_A CONFIG_B '
                     f'CKPT_B [...] (got {len(args.models)} paths)')
    if args.names and len(args.names) != len(args.models) // 2:
        parser.error(f'--names: {len(args.names)} names for {len(args.models) // 2} models')
    return args


def main():
    args = parse_args()
    configs, checkpoints = args.models[0::2], args.models[1::2]
    names = args.names or default_names(checkpoints)
    try:
        result = compare_checkpoints(list(zip(names, configs, checkpoints)), args.out,
                                     data=args.data, img_size=args.img_size,
                                     cfg_options=args.cfg_options,
                                     num_images=args.num_images, score_thr=args.score_thr)
    except (ConfigError, CheckpointError, DataError) as e:
        sys.exit(f'error: {e}')
    print('\n'.join([''] + results_table(result.models) +
                    ['', f'[compare] per-class AP and more: {result.markdown}; the images '
                     f'where they disagree most: {result.picture}']))


if __name__ == '__main__':
    main()
