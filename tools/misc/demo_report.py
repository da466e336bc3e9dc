"""The demo's report: what is measured of each model, and ``report.md`` that says how."""
from __future__ import annotations

import statistics
import time
from typing import Dict, List

from train_runs import fmt_seconds


def measure(model, img_size: int) -> dict:
    """Parameters, GFLOPs per image and median CPU ms of the network per image.

    Batch 1, backbone + neck + head; pre-processing and NMS left out: NMS time depends on
    how many boxes a half-trained model scores above the threshold, not on the model.

    Args:
        model (nn.Module): An mmyolo detector (its ``_forward``).
        img_size (int): Input height and width (px).

    Returns:
        dict: ``params``, ``gflops``, ``ms``.
    """
    import torch

    from mmkd_yolo.apis.dry_run import conv_gflops
    params = sum(p.numel() for p in model.parameters())
    x = torch.rand(1, 3, img_size, img_size)
    gflops = conv_gflops(model, model._forward, x)
    times = []
    # Trained YOLOv5 nets produce denormal activations; x86 CPUs handle them up to 30x
    # slower (measured here: 1360 ms vs 43 ms), which says nothing about the model.
    # Deployment runtimes flush them to zero; so does this measurement.
    torch.set_flush_denormal(True)
    with torch.no_grad():
        for i in range(25):
            start = time.perf_counter()
            model._forward(x)
            if i >= 5:  # warm-up first
                times.append((time.perf_counter() - start) * 1000)
    return dict(params=params, gflops=gflops, ms=statistics.median(times))


def results_table(rows: List[dict]) -> List[str]:
    """The models' table (markdown lines).

    Args:
        rows (list[dict]): Per model: ``name``, ``epochs``, ``mAP``, ``mAP50`` and
            :func:`measure`'s keys.
    """
    lines = ['| model | epochs | mAP@.5:.95 | mAP@.5 | parameters | GFLOPs | CPU ms / image |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["name"]} | {r["epochs"]} | {r["mAP"]:.3f} | {r["mAP50"]:.3f} | '
                     f'{r["params"] / 1e6:.2f}M | {r["gflops"]:.2f} | {r["ms"]:.1f} |')
    return lines


def write_report(path: str, rows: List[dict], timings: Dict[str, float], task: dict,
                 num_classes: int, seed: int, fast: bool, threads: int,
                 total_seconds: float) -> None:
    """Write ``report.md``: the task, the models' table, the students' difference, the
    time of each step, and the pictures (``curves.png``, ``detections.png`` beside it).

    Args:
        path (str): The file to write.
        rows (list[dict]): :func:`results_table`'s rows: teacher, student alone,
            student distilled.
        timings (dict): Seconds per step (0: reused from before).
        task (dict): The demo task (data sizes).
        num_classes (int): Classes of the data.
        seed (int): The students' seed.
        fast (bool): A ``FAST=1`` smoke run.
        threads (int): CPU threads of the measurement.
        total_seconds (float): The whole demo's time.
    """
    plain, kd = rows[1], rows[2]
    lines = [
        f'# mmkd_yolo demo{" (FAST=1 smoke run)" if fast else ""}', '',
        f'Generated shapes, {num_classes} classes, {task["num_train"]} train / '
        f'{task["num_val"]} val images of {task["img_size"]} px; seed {seed}. '
        'CPU ms: median of 20 forward passes of the network, batch 1, '
        f'{threads} threads, denormals flushed to zero (pre-processing and '
        'NMS not included).', '']
    lines += results_table(rows)
    lines += ['', f'**Distilled minus alone: {100 * (kd["mAP"] - plain["mAP"]):+.1f} points '
              f'mAP@.5:.95, {100 * (kd["mAP50"] - plain["mAP50"]):+.1f} points mAP@.5** (one '
              'seed; `benchmarks/kd_gain.py demo` repeats it over seeds).', '',
              '| step | time |', '|---|---|']
    for role, seconds in timings.items():
        lines.append(f'| {role} | {fmt_seconds(seconds) if seconds else "reused"} |')
    lines += [f'| total | {fmt_seconds(total_seconds)} |', '',
              '![val mAP and losses per epoch](curves.png)', '',
              '![detections: ground truth, teacher, student alone, student distilled]'
              '(detections.png)', '']
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
