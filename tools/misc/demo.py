"""The demo: distill a YOLOv5-s teacher into a YOLOv5-n student on generated data, on CPU.

    make demo              # or: python tools/misc/demo.py
    make demo FAST=1       # a smoke run of the same steps on a tiny schedule (minutes)

Steps (each resumable: rerunning skips what finished and resumes what was interrupted):
1. generate the demo set (shapes in clutter, 8 classes; reused when it exists);
2. train the teacher (YOLOv5-s), reused when trained before on the same data and schedule;
3. train the student alone (YOLOv5-n), the baseline;
4. train the same student with the default distillation recipe from the teacher, same
   schedule and seed;
5. evaluate all three with ``tools/analysis_tools/compare_checkpoints.py``'s comparison
   (``compare.md``: mAP, per-class AP, parameters, GFLOPs, CPU ms per image;
   ``compare.png``: the val images where they differ most, each model's detections side by
   side) and write ``work_dirs/demo/report.md`` with ``curves.png`` (both students' val mAP
   and losses per epoch).

Outputs go under the current directory (``data/shapes_demo_*``, ``work_dirs/demo``), as
mmengine's ``work_dirs``. The runs are ``train_runs.py``'s, the curves ``demo_plots.py``'s
and the report ``demo_report.py``'s (all beside this file); the comparison is
:func:`mmkd_yolo.analysis.compare_checkpoints`.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time
from typing import Callable

# the demo's helpers sit beside it (in a checkout and in an installed package's .mim/tools)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from demo_plots import plot_curves  # noqa: E402
from demo_report import write_report  # noqa: E402
from train_runs import (DEMO_KD_CFG, DEMO_STUDENT_CFG, DEMO_TASK,  # noqa: E402
                        DEMO_TEACHER_CFG, DEMO_WORK_DIR, RunFailedError, demo_data,
                        demo_data_options, demo_run_dirs, fmt_seconds, schedule_options,
                        train_run)

#: ``FAST=1``: the same steps on a tiny schedule (distillation stops for the last epoch
#: only, so that the smoke run distills).
FAST_TASK = dict(num_train=64, num_val=32, img_size=160, data_seed=0, teacher_epochs=6,
                 epochs=4, val_interval=2)
FAST_KD_OPTIONS = ['custom_hooks.1.num_last_epochs=1']


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=DEMO_WORK_DIR,
                        help='runs and report (default: %(default)s, under the current '
                        'directory)')
    parser.add_argument('--fast', action='store_true',
                        help='tiny schedule, same steps and outputs (make demo FAST=1)')
    parser.add_argument('--seed', type=int, default=0, help="the students' seed")
    return parser.parse_args()


def say(msg: str) -> None:
    """Print a ``[demo]`` line at once."""
    print(f'[demo] {msg}', flush=True)


def progress_printer(name: str) -> Callable[[str], None]:
    """One progress line per logged iteration, at most every 10 s.

    Args:
        name (str): The run's name in the lines.
    """
    last = [0.0]

    def show(line: str) -> None:
        if time.time() - last[0] >= 10:
            last[0] = time.time()
            say(f'  {name}: {line}')
    return show


def make_data(task: dict) -> str:
    """Step 1: the demo set's folder, generated unless it exists.

    Args:
        task (dict): ``DEMO_TASK`` or ``FAST_TASK``.
    """
    start = time.time()
    root = demo_data(task)
    took = time.time() - start
    say(f'1/5 data: {task["num_train"]} train + {task["num_val"]} val images of '
        f'{task["img_size"]} px in {root} ' +
        (f'({fmt_seconds(took)})' if took > 1 else '(generated before, reused)'))
    return root


def last_checkpoint(work_dir: str, epochs: int) -> str:
    """The final checkpoint of a finished run (exits with the fix if it is missing).

    Args:
        work_dir (str): The run's work dir.
        epochs (int): The run's epochs.
    """
    path = osp.join(work_dir, f'epoch_{epochs}.pth')
    if not osp.isfile(path):
        sys.exit(f'[demo] {path} is missing: delete {work_dir} and rerun')
    return path


def main():
    args = parse_args()
    task = FAST_TASK if args.fast else DEMO_TASK
    os.makedirs(args.work_dir, exist_ok=True)
    begin = time.time()
    length = ('FAST=1: tiny schedule, for a smoke run' if args.fast else
              'about 25 min on 2 CPU cores the first time')
    say(f'the demo: YOLOv5-s teacher -> YOLOv5-n student, outputs distilled ({length})')
    root = make_data(task)
    opts = demo_data_options(root)
    size = ['--img-size', str(task['img_size'])]
    timings = {}
    dirs = demo_run_dirs(task, args.seed, args.work_dir)
    te, ep, vi = task['teacher_epochs'], task['epochs'], task['val_interval']
    steps = [
        ('2/5 teacher YOLOv5-s', 'teacher', DEMO_TEACHER_CFG, dirs['teacher'], [],
         schedule_options(max(te // 4, 1), task['data_seed'])),
        ('3/5 student YOLOv5-n alone', 'plain', DEMO_STUDENT_CFG, dirs['plain'], [],
         schedule_options(vi, args.seed)),
        ('4/5 student YOLOv5-n distilled', 'distilled', DEMO_KD_CFG, dirs['distilled'],
         ['--t-weights', osp.join(dirs['teacher'], f'epoch_{te}.pth')],
         schedule_options(vi, args.seed) + (FAST_KD_OPTIONS if args.fast else [])),
    ]
    for title, role, config, work_dir, extra, schedule in steps:
        epochs = te if role == 'teacher' else ep
        say(f'{title}: {epochs} epochs, log in {work_dir}/train.log')
        try:
            took = train_run(work_dir, config, size + extra, schedule + opts,
                             on_progress=progress_printer(title.split(' ', 1)[1]),
                             epochs=epochs)
        except RunFailedError as e:
            sys.exit(f'[demo] {title}: {e}\nrerun to resume it')
        timings[role] = took
        say(f'{title}: ' + (f'done in {fmt_seconds(took)}' if took else
                            'trained before with the same data and schedule, reused'))

    say('5/5 evaluating the final checkpoints as tools/test.py does, side by side (mAP, '
        'per-class AP, parameters, GFLOPs, CPU ms per image, pictures)')
    start = time.time()
    import torch

    from mmkd_yolo.analysis import compare_checkpoints, results_table
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    runs = {role: (config, last_checkpoint(work_dir, te if role == 'teacher' else ep))
            for _, role, config, work_dir, _, _ in steps}
    # the student alone first: the reference the others are compared with
    models = [(name, *runs[role]) for name, role in (
        ('student alone', 'plain'), ('student distilled', 'distilled'), ('teacher', 'teacher'))]
    comparison = compare_checkpoints(models, args.work_dir, img_size=task['img_size'],
                                     cfg_options=dict(o.split('=', 1) for o in opts))
    plot_curves([('alone', steps[1][3]), ('distilled', steps[2][3])],
                osp.join(args.work_dir, 'curves.png'))
    timings['evaluation'] = time.time() - start

    report = osp.join(args.work_dir, 'report.md')
    total = time.time() - begin
    write_report(report, comparison, timings, task, seed=args.seed, fast=args.fast,
                 total_seconds=total)
    print('\n' + '\n'.join(results_table(comparison.models)) + '\n')
    plain, kd = (m.metrics['coco/bbox_mAP'] for m in comparison.models[:2])
    say(f'distillation changed the student by {100 * (kd - plain):+.1f} points mAP@.5:.95; '
        f'report: {report} (with compare.md, compare.png and curves.png), total '
        f'{fmt_seconds(total)}')


if __name__ == '__main__':
    main()
