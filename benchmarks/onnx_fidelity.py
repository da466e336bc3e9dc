"""The exported ONNX model scores what the PyTorch model scores: onnx_test.py vs test.py.

    python benchmarks/onnx_fidelity.py [--weights ../shared/weights/yolov5n.pt]
        [--data ../shared/data/coco128/data.yaml] [--img-size 640]

Exports the official YOLOv5n (converted from its Ultralytics checkpoint) with
tools/deployment/export_onnx.py, dynamic and static, and evaluates each with
tools/deployment/onnx_test.py beside tools/test.py on the same images (mmyolo's YOLOv5-n
config, mmdet's COCO metric). The dynamic graph is evaluated with the config's
rectangular batches, exactly as tools/test.py; the static one letterboxed to a square,
so tools/test.py is run that way too for its row.
"""
import argparse
import os.path as osp
import re
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(osp.dirname(REPO), 'shared')
CONFIG = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'
LOADER = ['test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']


def tool(args):
    start = time.time()
    out = subprocess.run([sys.executable] + args, capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        sys.exit(out.stdout[-2000:] + out.stderr[-3000:])
    m = re.search(r'coco/bbox_mAP: ([\d.]+)\s+coco/bbox_mAP_50: ([\d.]+)', out.stdout)
    return float(m.group(1)), float(m.group(2)), time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--weights', default=osp.join(SHARED, 'weights', 'yolov5n.pt'))
    parser.add_argument('--data', default=osp.join(SHARED, 'data', 'coco128', 'data.yaml'))
    parser.add_argument('--img-size', type=int, default=640)
    args = parser.parse_args()
    size = str(args.img_size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        common = [CONFIG, args.weights, '--data', args.data, '--img-size', size]
        test = [osp.join(REPO, 'tools', 'test.py'), *common[:2], *common[2:]]
        export = osp.join(REPO, 'tools', 'deployment', 'export_onnx.py')
        onnx_test = osp.join(REPO, 'tools', 'deployment', 'onnx_test.py')
        for kind, flag, test_opts in (
                ('dynamic', ['--dynamic'], []),
                ('static', [], ['val_dataloader.dataset.batch_shapes_cfg=None',
                                'test_dataloader.dataset.batch_shapes_cfg=None'])):
            onnx_file = osp.join(tmp, f'{kind}.onnx')
            subprocess.run([sys.executable, export, *common, '--out', onnx_file, *flag],
                           check=True, capture_output=True, cwd=REPO)
            ref = tool(test + ['--work-dir', osp.join(tmp, f'pt_{kind}'), '--cfg-options',
                               *LOADER, *test_opts])
            got = tool([onnx_test, onnx_file, '--data', args.data,
                        '--work-dir', osp.join(tmp, f'onnx_{kind}')])
            rows.append((kind, ref, got))
            print(f'[onnx_fidelity] {kind}: test.py {ref[0]:.3f}, onnx_test.py {got[0]:.3f}',
                  flush=True)
    print(f'\n{osp.basename(args.weights)} on {args.data}, {size} px\n')
    print('| graph (protocol) | tools/test.py mAP@.5:.95 | onnx_test.py mAP@.5:.95 | diff '
          '(points) | test.py mAP@.5 | onnx_test.py mAP@.5 |\n|---|---|---|---|---|---|')
    names = {'dynamic': 'dynamic (rectangular batches)', 'static': 'static (square letterbox)'}
    for kind, ref, got in rows:
        print(f'| {names[kind]} | {ref[0]:.3f} | {got[0]:.3f} | {100 * (got[0] - ref[0]):+.2f} | '
              f'{ref[1]:.3f} | {got[1]:.3f} |')


if __name__ == '__main__':
    main()
