"""COCO mAP of an exported ONNX model through onnxruntime, as tools/test.py measures it.

    python tools/deployment/onnx_test.py model.onnx --data data.yaml [--img-size N]

The test set is the val split of --data (the file stores no data paths). The test
pipeline, batching, data preprocessor, post-processing (score threshold, NMS) and mmdet's
COCO metric are those of the config the model was exported from, stored in the file as
JSON data with allow-listed types only (nothing in a model file runs); the same
coco/bbox_mAP lines are printed as by tools/test.py CONFIG CHECKPOINT --data data.yaml.
A static graph is evaluated at its own size with square letterboxing; a --dynamic one
with the config's rectangular batch shapes, exactly as tools/test.py.
"""
import argparse
import sys

from mmkd_yolo.apis.onnx_detector import onnx_test_runner
from mmkd_yolo.errors import CheckpointError, ConfigError, DataError


def main():
    parser = argparse.ArgumentParser(description='Evaluate an ONNX model (COCO mAP)')
    parser.add_argument('model', help='.onnx file from tools/deployment/export_onnx.py')
    parser.add_argument('--data', metavar='DATA_YAML',
                        help='Ultralytics data.yaml: evaluate on its val set (required)')
    parser.add_argument('--img-size', type=int, help='test size (px; dynamic graphs)')
    parser.add_argument('--work-dir', help='where the logs go')
    args = parser.parse_args()
    try:
        runner = onnx_test_runner(args.model, data=args.data, img_size=args.img_size,
                                  work_dir=args.work_dir)
    except (ConfigError, CheckpointError, DataError) as e:
        sys.exit(f'error: {e}')
    return runner.test()


if __name__ == '__main__':
    main()
