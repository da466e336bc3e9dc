"""CPU latency per image: PyTorch eager vs onnxruntime, plain vs distilled student.

    python benchmarks/deploy_speed.py [--sizes 320 640] [--runs 30]

The two students of ``make demo`` (YOLOv5-n trained alone and distilled from the
YOLOv5-s; run ``make demo`` first) are exported with ``tools/deployment/export_onnx.py``'s
code and timed at batch 1: the network and the box decoding (what the ONNX graph holds;
image loading and NMS left out), median of ``--runs`` after warm-up, both runtimes with
the same threads and with denormals flushed to zero (trained YOLOv5 nets produce
denormal activations that x86 handles many times slower; deployment runtimes flush
them). Also parameters and GFLOPs. Same architecture, same cost: the gain of
distillation is free at inference.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools', 'misc'))  # the demo's run helpers

from train_runs import DEMO_KD_CFG, DEMO_STUDENT_CFG, DEMO_TASK, demo_run_dirs  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[320, 640])
    parser.add_argument('--runs', type=int, default=30)
    parser.add_argument('--threads', type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument('--seed', type=int, default=0, help='which demo seed\'s students')
    return parser.parse_args()


def median_ms(fn, runs: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    args = parse_args()
    import onnxruntime as ort

    from mmkd_yolo.apis.detector import load_detector
    from mmkd_yolo.apis.dry_run import conv_gflops
    from mmkd_yolo.apis.onnx_detector import export_detector_onnx
    from mmkd_yolo.deploy import YOLOv5ExportModel
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    dirs = demo_run_dirs(DEMO_TASK, args.seed)
    students = {'plain n': (DEMO_STUDENT_CFG, dirs['plain']),
                'distilled n (from s)': (DEMO_KD_CFG, dirs['distilled'])}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, work_dir) in students.items():
            ckpt = osp.join(work_dir, f'epoch_{DEMO_TASK["epochs"]}.pth')
            if not osp.isfile(ckpt):
                sys.exit(f'[deploy_speed] {ckpt} is missing: run `make demo` first')
            for size in args.sizes:
                onnx_file = osp.join(tmp, f'{size}.onnx')
                export_detector_onnx(config, ckpt, onnx_file, img_size=size)
                model = YOLOv5ExportModel(load_detector(config, ckpt)).eval()
                x = torch.rand(1, 3, size, size)
                params = sum(p.numel() for p in model.parameters())
                gflops = conv_gflops(model.detector, model.detector._forward, x)
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = args.threads
                opts.inter_op_num_threads = 1
                opts.add_session_config_entry('session.set_denormal_as_zero', '1')
                session = ort.InferenceSession(onnx_file, opts,
                                               providers=['CPUExecutionProvider'])
                feed = {'images': x.numpy()}
                with torch.no_grad():
                    eager = median_ms(lambda: model(x), args.runs)
                onnx_ms = median_ms(lambda: session.run(None, feed), args.runs)
                rows.append((name, size, params, gflops, eager, onnx_ms))
                print(f'[deploy_speed] {name} {size} px: eager {eager:.1f} ms, '
                      f'onnxruntime {onnx_ms:.1f} ms', flush=True)
    lines = [f'CPU latency per image, batch 1, {args.threads} threads, median of {args.runs} '
             f'(torch {torch.__version__}, onnxruntime {ort.__version__})', '',
             '| student | size | params | GFLOPs | PyTorch eager ms | onnxruntime ms | '
             'onnxruntime / eager |', '|---|---|---|---|---|---|---|']
    for name, size, params, gflops, eager, onnx_ms in rows:
        lines.append(f'| {name} | {size} | {params / 1e6:.2f}M | {gflops:.2f} | {eager:.1f} | '
                     f'{onnx_ms:.1f} | {onnx_ms / eager:.2f}x |')
    print('\n' + '\n'.join(lines))


if __name__ == '__main__':
    main()
