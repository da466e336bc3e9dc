"""Convert an Ultralytics YOLOv5 checkpoint (v6.0 - v7.0, P5) into an mmyolo one.

    python tools/model_converters/yolov5_to_mmyolo.py yolov5s.pt yolov5s_mmyolo.pth

Needs no YOLOv5 source tree and runs nothing from the pickle (restricted unpickler).
The EMA weights are taken when the checkpoint has them; depth/width, class count, class
names and anchors go into the checkpoint's meta and are printed.
"""
import argparse
import sys

from mmkd_yolo.converters import convert_yolov5_checkpoint
from mmkd_yolo.errors import CheckpointError
from mmkd_yolo.fileio import save_atomic
from mmkd_yolo.models.detector_cfg import mmyolo_yolov5_config, yolov5_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='Ultralytics checkpoint (.pt)')
    parser.add_argument('dst', help='mmyolo checkpoint to write (.pth)')
    args = parser.parse_args()
    try:
        ckpt = convert_yolov5_checkpoint(args.src)
    except CheckpointError as e:
        sys.exit(f'error: {e}')
    save_atomic(ckpt, args.dst)  # a kill while writing never leaves half a checkpoint
    meta = ckpt['meta']
    size = yolov5_size(meta['widen_factor'])
    print(f'converted {args.src} -> {args.dst}: {len(ckpt["state_dict"])} tensors, '
          f'{"EMA" if meta["ema"] else "model"} weights\n'
          f'  YOLOv5-{size}: deepen_factor={meta["deepen_factor"]} '
          f'widen_factor={meta["widen_factor"]}, num_classes={meta["num_classes"]}\n'
          f'  anchors={meta["anchors"]}\n'
          f'  mmyolo config: {mmyolo_yolov5_config(size)}'
          + ('' if meta['num_classes'] == 80 else
             f' with num_classes={meta["num_classes"]}'))


if __name__ == '__main__':
    main()
