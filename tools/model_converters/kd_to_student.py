"""Keep only the student of a distillation checkpoint: a plain mmyolo checkpoint.

    python tools/model_converters/kd_to_student.py work_dirs/kd/epoch_300.pth student.pth

The result loads into the student's mmyolo config and evaluates with tools/test.py.
By default the EMA weights (the ones validation evaluated) are kept; --no-ema keeps
the raw ones.
"""
import argparse
import sys

from mmkd_yolo.converters.kd_to_student import extract_student
from mmkd_yolo.errors import CheckpointError
from mmkd_yolo.fileio import save_atomic


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='distillation checkpoint')
    parser.add_argument('dst', help='student checkpoint to write')
    parser.add_argument('--no-ema', action='store_true', help='keep the raw, not EMA, weights')
    args = parser.parse_args()
    try:
        ckpt = extract_student(args.src, use_ema=not args.no_ema)
    except CheckpointError as e:
        sys.exit(f'error: {e}')
    save_atomic(ckpt, args.dst)  # a kill while writing never leaves half a checkpoint
    print(f'{args.src} -> {args.dst}: student with {len(ckpt["state_dict"])} tensors')


if __name__ == '__main__':
    main()
