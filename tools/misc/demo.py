"""The demo: distill a YOLOv5-s teacher into a YOLOv5-n student on generated data, on CPU.

    make demo            # or: python tools/misc/demo.py [--epochs 40] [--work-dir ...]

Steps, each a plain ``tools/train.py`` run whose log is kept under the work dir:
1. generate the shapes dataset (data/shapes, unless it exists);
2. train the teacher (YOLOv5-s);
3. train the student alone (YOLOv5-n), the baseline;
4. train the same student with output distillation from the teacher;
and print both students' COCO mAP. Every run is resumable: rerunning the demo skips the
steps that finished and resumes a step that was interrupted.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TAIL = 'v61_fast_1xb16-40e_shapes-160.py'
TEACHER_CFG = osp.join(REPO, 'configs', 'yolov5', f'yolov5_s-{TAIL}')
STUDENT_CFG = osp.join(REPO, 'configs', 'yolov5', f'yolov5_n-{TAIL}')
KD_CFG = osp.join(REPO, 'configs', 'distill', 'yolov5', f'kd-out_yolov5_s-to-n-{TAIL}')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo'))
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'shapes'))
    parser.add_argument('--epochs', type=int, default=30, help='epochs of each run')
    parser.add_argument('--teacher-epochs', type=int, default=60)
    parser.add_argument('--num-train', type=int, default=256)
    parser.add_argument('--num-val', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def final_map(work_dir: str):
    """(mAP@.5:.95, mAP@.5) of the last validation in a run's scalars.json."""
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            rows += [json.loads(line) for line in f if 'coco/bbox_mAP' in line]
    if not rows:
        return None
    return rows[-1]['coco/bbox_mAP'], rows[-1]['coco/bbox_mAP_50']


def train(name: str, config: str, work_dir: str, epochs: int, data_root: str, seed: int,
          extra=()) -> float:
    done = osp.join(work_dir, 'DONE')
    if osp.isfile(done):
        print(f'[demo] {name}: done before ({work_dir}), skipped')
        return 0.0
    os.makedirs(work_dir, exist_ok=True)
    ckpts = glob.glob(osp.join(work_dir, 'epoch_*.pth'))
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work_dir,
           *extra, *(['--resume'] if ckpts else []), '--cfg-options',
           f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
           f'default_hooks.param_scheduler.max_epochs={epochs}',
           f'default_hooks.checkpoint.interval={max(1, epochs // 4)}',
           f'randomness.seed={seed}',
           f'train_dataloader.dataset.data_root={data_root}/',
           f'val_dataloader.dataset.data_root={data_root}/',
           f'val_evaluator.ann_file={data_root}/annotations/val.json']
    log = osp.join(work_dir, 'train.log')
    print(f'[demo] {name}: {epochs} epochs, log in {log}', flush=True)
    start = time.time()
    with open(log, 'a') as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=REPO)
        for line in proc.stdout:
            f.write(line)
            # one short progress line per logged iteration, and every error
            if ' - mmengine - INFO - Epoch(train)' in line or 'Error' in line:
                msg = line.split(' - mmengine - INFO - ')[-1].strip()
                print(f'[demo]   {msg[:150]}', flush=True)
        if proc.wait() != 0:
            sys.exit(f'[demo] {name} failed (exit {proc.returncode}); see {log}')
    open(done, 'w').close()
    return time.time() - start


def main():
    args = parse_args()
    sys.path.insert(0, REPO)
    if not osp.isfile(osp.join(args.data_root, 'annotations', 'val.json')):
        from mmkd_yolo.datasets import make_shapes_dataset
        print(f'[demo] generating {args.num_train}+{args.num_val} images in {args.data_root}')
        make_shapes_dataset(args.data_root, num_train=args.num_train, num_val=args.num_val,
                            img_size=160, seed=args.seed)
    wd = args.work_dir
    teacher_dir = osp.join(wd, 'teacher_s')
    train('teacher (YOLOv5-s)', TEACHER_CFG, teacher_dir, args.teacher_epochs, args.data_root,
          args.seed)
    teacher_ckpt = osp.join(teacher_dir, f'epoch_{args.teacher_epochs}.pth')
    train('student alone (YOLOv5-n)', STUDENT_CFG, osp.join(wd, 'student_n'), args.epochs,
          args.data_root, args.seed)
    train('student distilled from the teacher', KD_CFG, osp.join(wd, 'kd_s-to-n'), args.epochs,
          args.data_root, args.seed, extra=['--t-weights', teacher_ckpt])

    rows = [('teacher YOLOv5-s', args.teacher_epochs, final_map(teacher_dir)),
            ('student YOLOv5-n, alone', args.epochs, final_map(osp.join(wd, 'student_n'))),
            ('student YOLOv5-n, distilled (kd-out)', args.epochs,
             final_map(osp.join(wd, 'kd_s-to-n')))]
    print('\n| model | epochs | mAP@.5:.95 | mAP@.5 |\n|---|---|---|---|')
    for name, epochs, m in rows:
        print(f'| {name} | {epochs} | ' + (f'{m[0]:.3f} | {m[1]:.3f} |' if m else 'n/a | n/a |'))
    base, kd = rows[1][2], rows[2][2]
    if base and kd:
        print(f'\n[demo] distillation changed the student mAP@.5:.95 by {kd[0] - base[0]:+.3f} '
              f'(validation: {args.num_val} generated images; one seed)')


if __name__ == '__main__':
    main()
