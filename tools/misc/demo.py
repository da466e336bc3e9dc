"""The demo: distill a YOLOv5-s teacher into a YOLOv5-n student on generated data, on CPU.

    make demo              # or: python tools/misc/demo.py
    make demo FAST=1       # a smoke run of the same steps on a tiny schedule (minutes)

Steps (each resumable: rerunning skips what finished and resumes what was interrupted):
1. generate the demo set (shapes in clutter, 8 classes; reused when it exists);
2. train the teacher (YOLOv5-s), reused when trained before on the same data and schedule;
3. train the student alone (YOLOv5-n), the baseline;
4. train the same student with the default distillation recipe from the teacher, same
   schedule and seed;
5. evaluate all three (mAP, parameters, GFLOPs, CPU ms per image) and write
   ``work_dirs/demo/report.md`` with ``curves.png`` (both students' val mAP and losses per
   epoch) and ``detections.png`` (val images with each model's detections side by side).
"""
from __future__ import annotations

import argparse
import warnings
import json
import os
import os.path as osp
import statistics
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from mmkd_yolo.apis.runs import (DEMO_KD_CFG, DEMO_STUDENT_CFG,  # noqa: E402
                                 DEMO_TASK, DEMO_TEACHER_CFG, DEMO_WORK_DIR, demo_data,
                                 demo_data_options, demo_run_dirs, fmt_seconds,
                                 loss_history, schedule_options, train_run, val_history)
#: ``FAST=1``: the same steps on a tiny schedule (distillation stops for the last epoch
#: only, so that the smoke run distills).
FAST_TASK = dict(num_train=64, num_val=32, img_size=160, data_seed=0, teacher_epochs=6,
                 epochs=4, val_interval=2)
FAST_KD_OPTIONS = ['custom_hooks.1.num_last_epochs=1']


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=DEMO_WORK_DIR)
    parser.add_argument('--fast', action='store_true',
                        help='tiny schedule, same steps and outputs (make demo FAST=1)')
    parser.add_argument('--seed', type=int, default=0, help="the students' seed")
    return parser.parse_args()


def say(msg: str) -> None:
    print(f'[demo] {msg}', flush=True)


def progress_printer(name: str):
    """One progress line per logged iteration, at most every 10 s."""
    last = [0.0]

    def show(line: str) -> None:
        if time.time() - last[0] >= 10:
            last[0] = time.time()
            say(f'  {name}: {line}')
    return show


def make_data(task: dict) -> str:
    start = time.time()
    root = demo_data(task)
    took = time.time() - start
    say(f'1/5 data: {task["num_train"]} train + {task["num_val"]} val images of '
        f'{task["img_size"]} px in {root} ' +
        (f'({fmt_seconds(took)})' if took > 1 else '(generated before, reused)'))
    return root


def last_checkpoint(work_dir: str, epochs: int) -> str:
    path = osp.join(work_dir, f'epoch_{epochs}.pth')
    if not osp.isfile(path):
        sys.exit(f'[demo] {path} is missing: delete {work_dir} and rerun')
    return path


# --- evaluation ----------------------------------------------------------------------------
def measure(model, img_size: int) -> dict:
    """Parameters, GFLOPs per image and median CPU ms of the network per image (batch 1,
    backbone + neck + head; pre-processing and NMS left out: NMS time depends on how many
    boxes a half-trained model scores above the threshold, not on the model)."""
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


def draw_grid(models, images, classes, out: str, score_thr: float = 0.3) -> None:
    """Rows: val images; columns: ground truth, then each model's detections."""
    import cv2
    import numpy as np

    from mmkd_yolo.apis.deploy import detect
    from mmkd_yolo.visualization import draw_boxes
    scale = 3
    rows = []
    for path, gt in images:
        img = cv2.imread(path)
        big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        columns = [('ground truth', [(b, c, None) for b, c in gt])]
        for name, model in models:
            _, pred = next(detect(model, [path]))
            keep = pred.scores >= score_thr
            columns.append((name, [(b.tolist(), int(c), float(s)) for b, c, s in zip(
                pred.bboxes[keep], pred.labels[keep], pred.scores[keep])]))
        panels = []
        for title, boxes in columns:
            panel = draw_boxes(big, boxes, classes, scale=scale)
            header = np.full((28, panel.shape[1], 3), 255, np.uint8)
            cv2.putText(header, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
            panels.append(np.vstack([header, panel]))
        rows.append(np.hstack([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=255)
                               for p in panels]))
    cv2.imwrite(out, np.vstack(rows))


def plot_curves(runs, out: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax_map, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name, work_dir in runs:
        hist = val_history(work_dir)
        ax_map.plot([h['epoch'] for h in hist], [h['mAP'] for h in hist], marker='o',
                    label=name)
        colour = ax_map.lines[-1].get_color()
        for part, style in (('bbox', '-'), ('obj', '--'), ('cls', ':')):
            # the distilled run logs its detection losses as student.loss_*
            losses = loss_history(work_dir, f'student.loss_{part}') or \
                loss_history(work_dir, f'loss_{part}')
            ax_loss.plot(list(losses), list(losses.values()), style, color=colour,
                         label=f'{name}: loss_{part}')
    ax_map.set(xlabel='epoch', ylabel='val mAP@.5:.95', title='students: val mAP')
    ax_loss.set(xlabel='epoch', ylabel='mean per epoch',
               title='students: detection losses (distillation parts not included)')
    for ax in (ax_map, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    args = parse_args()
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
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
         schedule_options(te, max(te // 4, 1), task['data_seed'])),
        ('3/5 student YOLOv5-n alone', 'plain', DEMO_STUDENT_CFG, dirs['plain'], [],
         schedule_options(ep, vi, args.seed)),
        ('4/5 student YOLOv5-n distilled', 'distilled', DEMO_KD_CFG, dirs['distilled'],
         ['--t-weights', osp.join(dirs['teacher'], f'epoch_{te}.pth')],
         schedule_options(ep, vi, args.seed) + (FAST_KD_OPTIONS if args.fast else [])),
    ]
    for title, role, config, work_dir, extra, schedule in steps:
        epochs = te if role == 'teacher' else ep
        say(f'{title}: {epochs} epochs, log in {work_dir}/train.log')
        took = train_run(work_dir, config, size + extra, schedule + opts,
                         on_progress=progress_printer(title.split(' ', 1)[1]))
        timings[role] = took
        say(f'{title}: ' + (f'done in {fmt_seconds(took)}' if took else
                            'trained before with the same data and schedule, reused'))

    say('5/5 evaluating: mAP from the runs, parameters, GFLOPs, CPU ms per image, pictures')
    start = time.time()
    import torch

    from mmkd_yolo.apis.deploy import load_detector
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with open(osp.join(root, 'annotations', 'val.json')) as f:
        val = json.load(f)
    classes = [c['name'] for c in sorted(val['categories'], key=lambda c: c['id'])]
    images = [osp.join(root, 'val', im['file_name']) for im in val['images']]
    rows = []
    models = []
    for title, role, config, work_dir, _, _ in steps:
        epochs = te if role == 'teacher' else ep
        model = load_detector(config, last_checkpoint(work_dir, epochs))
        hist = val_history(work_dir)
        rows.append(dict(name=title.split(' ', 1)[1], role=role, epochs=epochs,
                         mAP=hist[-1]['mAP'], mAP50=hist[-1]['mAP50'],
                         **measure(model, task['img_size'])))
        models.append((rows[-1]['name'], model))
    gt = {im['id']: [] for im in val['images'][:4]}
    for ann in val['annotations']:
        if ann['image_id'] in gt:
            x, y, w, h = ann['bbox']
            gt[ann['image_id']].append(([x, y, x + w, y + h], ann['category_id'] - 1))
    draw_grid(models, [(images[i], gt[im['id']]) for i, im in enumerate(val['images'][:4])],
              classes, osp.join(args.work_dir, 'detections.png'))
    plot_curves([('alone', steps[1][3]), ('distilled', steps[2][3])],
                osp.join(args.work_dir, 'curves.png'))
    timings['evaluation'] = time.time() - start

    plain, kd = rows[1], rows[2]
    lines = [
        f'# mmkd_yolo demo{" (FAST=1 smoke run)" if args.fast else ""}', '',
        f'Generated shapes, {len(classes)} classes, {task["num_train"]} train / '
        f'{task["num_val"]} val images of {task["img_size"]} px; seed {args.seed}. '
        'CPU ms: median of 20 forward passes of the network, batch 1, '
        f'{torch.get_num_threads()} threads, denormals flushed to zero (pre-processing and '
        'NMS not included).', '',
        '| model | epochs | mAP@.5:.95 | mAP@.5 | parameters | GFLOPs | CPU ms / image |',
        '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["name"]} | {r["epochs"]} | {r["mAP"]:.3f} | {r["mAP50"]:.3f} | '
                     f'{r["params"] / 1e6:.2f}M | {r["gflops"]:.2f} | {r["ms"]:.1f} |')
    diff = kd['mAP'] - plain['mAP']
    lines += ['', f'**Distilled minus alone: {100 * diff:+.1f} points mAP@.5:.95, '
              f'{100 * (kd["mAP50"] - plain["mAP50"]):+.1f} points mAP@.5** (one seed; '
              '`benchmarks/kd_gain.py demo` repeats it over seeds).', '',
              '| step | time |', '|---|---|']
    for role, seconds in timings.items():
        lines.append(f'| {role} | {fmt_seconds(seconds) if seconds else "reused"} |')
    lines += [f'| total | {fmt_seconds(time.time() - begin)} |', '',
              '![val mAP and losses per epoch](curves.png)', '',
              '![detections: ground truth, teacher, student alone, student distilled]'
              '(detections.png)', '']
    report = osp.join(args.work_dir, 'report.md')
    with open(report, 'w') as f:
        f.write('\n'.join(lines))
    print('\n' + '\n'.join(lines[4:4 + 2 + len(rows)]) + '\n')
    say(f'distillation changed the student by {100 * diff:+.1f} points mAP@.5:.95; report: '
        f'{report} (with curves.png and detections.png), total {fmt_seconds(time.time() - begin)}')


if __name__ == '__main__':
    main()
