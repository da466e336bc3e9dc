"""Official YOLOv5n converted by mmkd_yolo, evaluated by mmdet's COCO metric, vs Ultralytics.

    python benchmarks/convert_fidelity.py [--weights ../shared/weights/yolov5n.pt]
        [--data ../shared/data/coco128/data.yaml]

Converts the Ultralytics checkpoint (restricted unpickler), evaluates it with
tools/test.py on mmyolo's YOLOv5-n config at 640 and 320 px, and prints mAP@0.5:0.95 and
mAP@0.5 beside Ultralytics' own val.py on the same 128 images and labels (rectangular
batches, conf 0.001, NMS IoU 0.6 on both sides).

The Ultralytics columns are a RECORDED reference, not measured by this script (Ultralytics
is not installed here): YOLOv5's ``val.py --weights yolov5n.pt --data coco128.yaml
--img 640|320 --conf-thres 0.001 --iou-thres 0.6`` (rectangular batches) on the official
v7.0 yolov5n.pt, as recorded in this project's measurement notes when the benchmark was
written (``../shared/docs/MEASUREMENTS.md``, "Fidelity"; the YOLOv5 release of val.py was
not noted). The table says so.
"""
import argparse
import os.path as osp
import re
import subprocess
import sys
import tempfile

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(osp.dirname(REPO), 'shared')
CONFIG = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'
#: RECORDED, not measured here: Ultralytics YOLOv5 val.py on ../shared/data/coco128
#: (mAP@.5:.95, mAP@.5), conf 0.001, NMS IoU 0.6, rectangular batches (module docstring).
REFERENCE = {640: (0.366, 0.568), 320: (0.289, 0.454)}
REFERENCE_NOTE = ('Ultralytics columns: recorded reference (YOLOv5 val.py, conf 0.001, '
                  'NMS IoU 0.6, rectangular batches, on the same images and labels; from '
                  "this project's measurement notes), not measured by this run.")


def evaluate(ckpt, data, size, work_dir):
    out = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'test.py'), CONFIG, ckpt, '--data', data,
         '--img-size', str(size), '--work-dir', work_dir, '--cfg-options',
         'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
         # Ultralytics val.py's NMS IoU (mmyolo's config uses 0.65): the same protocol
         'model.test_cfg.nms.iou_threshold=0.6'],
        capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stdout[-2000:] + out.stderr[-3000:])
    m = re.search(r'coco/bbox_mAP: ([\d.]+)\s+coco/bbox_mAP_50: ([\d.]+)', out.stdout)
    return float(m.group(1)), float(m.group(2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--weights', default=osp.join(SHARED, 'weights', 'yolov5n.pt'))
    parser.add_argument('--data', default=osp.join(SHARED, 'data', 'coco128', 'data.yaml'))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = osp.join(tmp, 'yolov5n_mmyolo.pth')
        subprocess.run([sys.executable, osp.join(REPO, 'tools', 'model_converters',
                                                 'yolov5_to_mmyolo.py'), args.weights, ckpt],
                       check=True, capture_output=True)
        rows = [(size, evaluate(ckpt, args.data, size, osp.join(tmp, str(size))))
                for size in (640, 320)]
    print(f'\n{osp.basename(args.weights)} on {args.data}\n')
    print('| size | mmkd_yolo + mmdet mAP@.5:.95 (measured) | Ultralytics val.py (recorded) '
          '| diff (points) | mmkd_yolo mAP@.5 (measured) | Ultralytics (recorded) |\n'
          '|---|---|---|---|---|---|')
    for size, (m, m50) in rows:
        ref, ref50 = REFERENCE[size]
        print(f'| {size} | {m:.3f} | {ref:.3f} | {100 * (m - ref):+.1f} | {m50:.3f} | '
              f'{ref50:.3f} |')
    print(f'\n{REFERENCE_NOTE}')


if __name__ == '__main__':
    main()
