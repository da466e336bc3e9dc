"""The demo's ``report.md``: the task, the comparison's table, the time of each step."""
from __future__ import annotations

from typing import Dict

from train_runs import fmt_seconds


def write_report(path: str, comparison, timings: Dict[str, float], task: dict, seed: int,
                 fast: bool, total_seconds: float) -> None:
    """Write ``report.md``: the task, the models' table and the students' difference (from
    the comparison, whose ``compare.md`` and ``compare.png`` sit beside it), the time of
    each step, and ``curves.png``.

    Args:
        path (str): The file to write.
        comparison (Comparison): :func:`~mmkd_yolo.analysis.compare_checkpoints`' result:
            student alone, student distilled, teacher.
        timings (dict): Seconds per step (0: reused from before).
        task (dict): The demo task (data sizes).
        seed (int): The students' seed.
        fast (bool): A ``FAST=1`` smoke run.
        total_seconds (float): The whole demo's time.
    """
    from mmkd_yolo.analysis import results_table
    plain, kd = (m.metrics for m in comparison.models[:2])
    lines = [
        f'# mmkd_yolo demo{" (FAST=1 smoke run)" if fast else ""}', '',
        f'Generated shapes, {len(comparison.val_set.classes)} classes, {task["num_train"]} '
        f'train / {task["num_val"]} val images of {task["img_size"]} px; seed {seed}. The '
        'final checkpoints evaluated as `tools/test.py` evaluates them, by '
        '`tools/analysis_tools/compare_checkpoints.py`\'s comparison: per-class AP, the '
        'classes gained and lost and how the CPU time is measured are in '
        '[compare.md](compare.md).', '']
    lines += results_table(comparison.models)
    lines += ['', f'**Distilled minus alone: '
              f'{100 * (kd["coco/bbox_mAP"] - plain["coco/bbox_mAP"]):+.1f} points mAP@.5:.95, '
              f'{100 * (kd["coco/bbox_mAP_50"] - plain["coco/bbox_mAP_50"]):+.1f} points '
              'mAP@.5** (one seed; `benchmarks/kd_gain.py demo` repeats it over seeds).', '',
              '| step | time |', '|---|---|']
    for role, seconds in timings.items():
        lines.append(f'| {role} | {fmt_seconds(seconds) if seconds else "reused"} |')
    lines += [f'| total | {fmt_seconds(total_seconds)} |', '',
              '![val mAP and losses per epoch](curves.png)', '',
              '![the val images where the models differ most: ground truth, student alone, '
              'student distilled, teacher](compare.png)', '']
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
