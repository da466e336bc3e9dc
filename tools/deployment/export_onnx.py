"""Export a YOLOv5 student (or mmyolo / Ultralytics YOLOv5 model) to ONNX.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out model.onnx
        [--img-size 640] [--batch 1] [--dynamic] [--data data.yaml]
        [--nms [--score-thr 0.25] [--iou-thr 0.45] [--max-per-class 100]]

CHECKPOINT may be a distillation checkpoint (its student is exported), an mmyolo
checkpoint or an Ultralytics YOLOv5 .pt. The graph takes RGB images in [0, 1]
(B, 3, H, W) and returns decoded x1y1x2y2 boxes (B, N, 4) and scores (B, N, C); with
--nms it ends in ONNX NonMaxSuppression and returns detections (K, 7): batch, x1, y1,
x2, y2, score, label. The file keeps its class names and test protocol (test pipeline,
batching, post-processing, data preprocessor, evaluator) as JSON data for
tools/deployment/onnx_test.py and tools/infer.py: no code and no paths of this machine
(the test set is given to onnx_test.py with --data).
"""
import argparse
import os
import os.path as osp
import sys

from mmkd_yolo.apis.onnx_detector import export_detector_onnx
from mmkd_yolo.deploy import OPSET
from mmkd_yolo.errors import CheckpointError, ConfigError, DataError


def parse_args():
    parser = argparse.ArgumentParser(description='Export a YOLOv5 detector to ONNX')
    parser.add_argument('config', help='config file (distillation or mmyolo)')
    parser.add_argument('checkpoint', help='distillation, mmyolo or Ultralytics checkpoint')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--img-size', type=int, default=640, help='input size (px)')
    parser.add_argument('--batch', type=int, default=1, help='input batch size')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width')
    parser.add_argument('--data', metavar='DATA_YAML',
                        help="Ultralytics data.yaml: the model's class names")
    parser.add_argument('--nms', action='store_true',
                        help='end-to-end graph with ONNX NonMaxSuppression')
    parser.add_argument('--score-thr', type=float, default=0.25, help='--nms score threshold')
    parser.add_argument('--iou-thr', type=float, default=0.45, help='--nms IoU threshold')
    parser.add_argument('--max-per-class', type=int, default=100,
                        help='--nms boxes kept per image and class')
    return parser.parse_args()


def main():
    args = parse_args()
    nms = None
    if args.nms:
        nms = dict(iou_threshold=args.iou_thr, score_threshold=args.score_thr,
                   max_per_class=args.max_per_class)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    try:
        sig = export_detector_onnx(args.config, args.checkpoint, args.out,
                                   img_size=args.img_size, batch=args.batch,
                                   dynamic=args.dynamic, nms=nms, data=args.data)
    except (ConfigError, CheckpointError, DataError) as e:
        sys.exit(f'error: {e}')
    print(f'\n{args.out}: ONNX opset {OPSET}, checked by onnx.checker')
    for kind in ('inputs', 'outputs'):
        for name, shape in sig[kind]:
            print(f'  {kind[:-1]:6s} {name}: {shape}')


if __name__ == '__main__':
    main()
