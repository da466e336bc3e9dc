"""Detect objects in images with a PyTorch checkpoint or an exported ONNX model.

    python tools/infer.py CONFIG CHECKPOINT IMAGE... [--out DIR] [--score-thr 0.3]
    python tools/infer.py MODEL.onnx IMAGE... [--out DIR] [--score-thr 0.3]

IMAGE may be a file, a folder (its images) or a glob. Writes each image with its
detections drawn (boxes, class names, scores) to a folder of its own, under its path
relative to the common folder of all the images (subfolders kept, so a/1.jpg and b/1.jpg
give a/1.jpg and b/1.jpg), and detections.json: per input path, a list of
{bbox: [x1, y1, x2, y2], score, label, class}. The folder is --out (default
work_dirs/infer) if it is new or empty, else the first free of DIR2, DIR3, ... as
Ultralytics' runs/detect/predict2: nothing there is written over, least of all the
images themselves (--exist-ok writes into DIR as it is, never over an input image).
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys

from mmkd_yolo.apis.detector import load_detector
from mmkd_yolo.apis.inference import detect
from mmkd_yolo.apis.onnx_detector import load_onnx_detector
from mmkd_yolo.errors import CheckpointError, ConfigError, DataError
from mmkd_yolo.visualization import draw_detections, drawn_image_paths, new_output_dir

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def expand_images(specs):
    """Files, folders and globs -> image paths, each file once (an error for none)."""
    paths, seen = [], set()
    for spec in specs:
        if osp.isdir(spec):
            found = [osp.join(spec, f) for f in sorted(os.listdir(spec))]
        elif osp.isfile(spec):
            found = [spec]
        else:
            found = sorted(glob.glob(spec, recursive=True))
        for path in found:
            if path.lower().endswith(IMAGE_EXTS) and osp.abspath(path) not in seen:
                seen.add(osp.abspath(path))
                paths.append(path)
    if not paths:
        raise DataError(f'no images found in {specs} (files, folders or globs of '
                        f'{"/".join(IMAGE_EXTS)}).')
    return paths


def main():
    parser = argparse.ArgumentParser(description='YOLOv5 detection on images')
    parser.add_argument('model', help='config file, or an exported .onnx file')
    parser.add_argument('inputs', nargs='+',
                        help='(for a config: CHECKPOINT first) images, folders or globs')
    parser.add_argument('--out', default=osp.join('work_dirs', 'infer'),
                        help='output folder; if it holds files, a new DIR2, DIR3, ... '
                        '(default: work_dirs/infer)')
    parser.add_argument('--exist-ok', action='store_true',
                        help='write into --out even if it holds files (never over an '
                        'input image)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='draw and save detections scoring at least this')
    parser.add_argument('--data', metavar='DATA_YAML', help="the model's classes")
    args = parser.parse_args()
    try:
        if args.model.endswith('.onnx'):
            model, images = load_onnx_detector(args.model), args.inputs
        else:
            if len(args.inputs) < 2:
                raise ConfigError('with a config, give CHECKPOINT and then images.')
            model = load_detector(args.model, args.inputs[0], data=args.data)
            images = args.inputs[1:]
        paths = expand_images(images)
        out_dir = new_output_dir(args.out, exist_ok=args.exist_ok)
        outs = dict(zip(paths, drawn_image_paths(paths, out_dir)))
    except (ConfigError, CheckpointError, DataError) as e:
        sys.exit(f'error: {e}')
    classes = model.dataset_meta['classes']
    results = {}
    for i, (path, pred) in enumerate(detect(model, paths), 1):
        keep = pred.scores >= args.score_thr
        dets = [dict(bbox=[round(float(v), 2) for v in box], score=round(float(score), 4),
                     label=int(label), **{'class': classes[int(label)]})
                for box, score, label in zip(pred.bboxes[keep], pred.scores[keep],
                                             pred.labels[keep])]
        results[path] = dets
        out = outs[path]
        os.makedirs(osp.dirname(out), exist_ok=True)
        draw_detections(path, dets, out)
        print(f'[{i}/{len(paths)}] {osp.relpath(out, out_dir)}: {len(dets)} detections')
    with open(osp.join(out_dir, 'detections.json'), 'w') as f:
        json.dump(results, f, indent=1)
    print(f'drawn images and detections.json in {out_dir}')


if __name__ == '__main__':
    main()
