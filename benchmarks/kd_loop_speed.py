"""Seconds per iteration of the whole training loop: plain YOLOv5-n vs distilled, one run.

    python benchmarks/kd_loop_speed.py [--coco128 ../shared/data/coco128]
        [--yolov5n ../shared/weights/yolov5n.pt] [--epochs 5] [--rounds 2]

Each variant is a real ``tools/train.py`` run (the Runner, data loading with 2 workers,
the student's EMA, logging, checkpointing at the end) on coco128 at 320 px, batch 16,
from the official YOLOv5n; distilled runs add the teacher (n <- n: the official
YOLOv5n; n <- s: a YOLOv5-s with random weights, as no official s checkpoint is at hand:
the cost does not depend on the weights). Variants alternate round by round, so machine
noise hits all alike. Reported: the mean logged seconds per iteration of epochs 3 to
``--epochs`` (steady state; start-up and the first epochs' warm-up left out; each
iteration's own time, not mmyolo's 50-iteration log average), its ratio to plain in the
same round (mean and range over rounds), the part of it spent waiting for
data, and the peak resident memory of the training process (the data workers are
separate processes, alike for all variants).

Ablations show what the cost measures buy: the teacher in PyTorch float32
(``--t-precision fp32``) and in onnxruntime (``ort``, what ``auto`` picks on CPUs without
native bf16), and mmengine's ``EMAHook`` over the whole model (teacher included) instead
of the configs' ``StudentEMAHook``. The limit: ``teacher forward alone`` runs the
distillation config with its losses removed (a child config: the teacher's forward pass
and its records every iteration, nothing computed from them), so that what distillation
costs beyond the teacher's forward pass is measured in the same rounds.

``--against DIR`` also runs the distilled variants from another checkout of this project
(e.g. ``git worktree add /tmp/prev <commit>``), in the same rounds: a before/after in one
run, where separate runs would differ by more than the change measured.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools', 'misc'))  # the demo's run helpers

from train_runs import Progress  # noqa: E402

TAIL = 'v61_fast_1xb16-40e_shapes-160.py'
PLAIN = osp.join(REPO, 'configs', 'yolov5', f'yolov5_n-{TAIL}')
KD = osp.join(REPO, 'configs', 'distill', 'yolov5', 'kd-out{}_yolov5_{}-to-n-' + TAIL)

# name: (config, extra tools/train.py options; '{n}' is the official YOLOv5n, '{images}'
# coco128's images)
VARIANTS = {
    'plain n': (PLAIN, []),
    'kd-out n <- n': (KD.format('', 'n'), ['--t-weights', '{n}']),
    # --unlabeled: the same batch of 16, 8 of them unlabeled (coco128's images again)
    'kd-out n <- n, half unlabeled': (KD.format('', 'n'), [
        '--t-weights', '{n}', '--unlabeled', '{images}', '--unlabeled-ratio', '0.5']),
    # ... weighted 1 in the output-distillation loss (the default before 2): the weight's
    # own cost, in the same rounds
    'kd-out n <- n, half unlabeled, weight 1': (KD.format('', 'n'), [
        '--t-weights', '{n}', '--unlabeled', '{images}', '--unlabeled-ratio', '0.5',
        '--unlabeled-weight', '1']),
    # ... with the student's strong view of them and the teacher's boxes as their targets
    # (decoding and NMS on the teacher's outputs each step)
    'kd-out n <- n, half unlabeled, 2 views + pseudo-labels': (KD.format('', 'n'), [
        '--t-weights', '{n}', '--unlabeled', '{images}', '--unlabeled-ratio', '0.5',
        '--unlabeled-aug', 'strong', '--unlabeled-pseudo-labels', '0.5']),
    'kd-out n <- s': (KD.format('', 's'), []),
    'kd-out-cwd n <- s': (KD.format('-cwd', 's'), []),
    'kd-out n <- s, teacher fp32': (KD.format('', 's'), ['--t-precision', 'fp32']),
    # the teacher in onnxruntime (float32), what --t-precision auto picks on CPUs without
    # native bf16, beside PyTorch float32 (what it replaced there)
    'kd-out n <- n, teacher fp32': (KD.format('', 'n'), ['--t-weights', '{n}',
                                                         '--t-precision', 'fp32']),
    'kd-out n <- n, teacher ort': (KD.format('', 'n'), ['--t-weights', '{n}',
                                                        '--t-precision', 'ort']),
    'kd-out n <- s, teacher ort': (KD.format('', 's'), ['--t-precision', 'ort']),
    'kd-out n <- s, EMA of the whole model': (
        KD.format('', 's'), ['--cfg-options', 'custom_hooks.0.type=EMAHook']),
    # the limit: the teacher's forward pass (its records taken) and no distillation loss
    'teacher forward alone, n <- n': (KD.format('', 'n'), ['--t-weights', '{n}']),
    'teacher forward alone, n <- s': (KD.format('', 's'), []),
}
#: Run only when named (``--variants``): the default list is the one the docs' cost tables
#: were measured with.
NOT_BY_DEFAULT = {'kd-out n <- n, half unlabeled, weight 1'}
#: variants run with a child config of theirs that drops the distillation losses
TEACHER_ALONE = ('teacher forward alone, n <- n', 'teacher forward alone, n <- s')
TEACHER_ALONE_CFG = '''_base_ = {config!r}
# the teacher runs and its recorders record, but no distillation loss is computed
model = dict(distiller=dict(distill_losses=dict(_delete_=True),
                            loss_forward_mappings=dict(_delete_=True)))
'''

# Runs tools/train.py in this process and writes its peak RSS (KiB) to $PEAK_RSS_FILE.
WRAPPER = '''
import os, resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
finally:
    with open(os.environ['PEAK_RSS_FILE'], 'w') as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
'''


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--coco128', default=osp.join(REPO, '..', 'shared', 'data', 'coco128'))
    parser.add_argument('--yolov5n',
                        default=osp.join(REPO, '..', 'shared', 'weights', 'yolov5n.pt'))
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--img-size', type=int, default=320)
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS),
                        default=[v for v in VARIANTS if v not in NOT_BY_DEFAULT])
    parser.add_argument('--workers', type=int, default=2, help='dataloader workers')
    parser.add_argument('--out', default=osp.join(REPO, 'work_dirs', 'kd_loop_speed'))
    parser.add_argument('--against', metavar='DIR',
                        help='another checkout whose distilled variants run alongside')
    return parser.parse_args()


def variant_runs(args) -> dict:
    """Variant name -> (its name in VARIANTS, the checkout it runs from)."""
    runs = {}
    for name in args.variants:
        runs[name] = (name, REPO)
        if args.against and name != 'plain n':
            tag = osp.basename(osp.normpath(args.against))
            runs[f'{name} [{tag}]'] = (name, osp.abspath(args.against))
    return runs


def run(args, name: str, work_dir: str, data: str, repo: str = REPO) -> dict:
    config, extra = VARIANTS[name]
    config = osp.join(repo, osp.relpath(config, REPO))
    extra = [e.format(n=args.yolov5n, images=osp.join(args.coco128, 'images')) for e in extra]
    cfg_opts = []
    if '--cfg-options' in extra:
        i = extra.index('--cfg-options')
        extra, cfg_opts = extra[:i], extra[i + 1:]
    distill = name != 'plain n'
    os.makedirs(work_dir, exist_ok=True)
    if name in TEACHER_ALONE:  # (beside work_dir: the Runner writes its config there)
        child = osp.join(osp.dirname(work_dir), f'{osp.basename(work_dir)}_teacher_alone.py')
        with open(child, 'w') as f:
            f.write(TEACHER_ALONE_CFG.format(config=config))
        config = child
    # the configs stop distillation for their last 5 epochs: in a 5-epoch run that would
    # be all of them; distill throughout
    stop = ['custom_hooks.1.num_last_epochs=0'] if distill else []
    opts = cfg_opts + stop + [
        f'train_cfg.max_epochs={args.epochs}', f'train_cfg.val_interval={args.epochs + 1}',
        f'default_hooks.checkpoint.interval={args.epochs}', 'default_hooks.logger.interval=1',
        # each iteration's own time: mmyolo's window of 50 would average the first
        # iterations' warm-up into the whole run
        'log_processor.window_size=1',
        'randomness.seed=0', f'train_dataloader.num_workers={args.workers}',
        f'train_dataloader.persistent_workers={args.workers > 0}']
    peak_file = osp.join(work_dir, 'peak_rss_kib')
    cmd = [sys.executable, '-c', WRAPPER, osp.join(repo, 'tools', 'train.py'), config,
           '--work-dir', work_dir, '--data', data, '--img-size', str(args.img_size),
           '--weights', args.yolov5n, *extra, '--cfg-options', *opts]
    with open(osp.join(work_dir, 'train.log'), 'w') as log:
        path = os.pathsep.join(filter(None, [repo, os.environ.get('PYTHONPATH')]))
        env = dict(os.environ, PEAK_RSS_FILE=peak_file, PYTHONPATH=path)
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=repo, env=env)
    if proc.returncode:
        sys.exit(f'[kd_loop_speed] {name} failed: see {work_dir}/train.log')
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    with open(files[-1]) as f:
        records = [json.loads(line) for line in f]
    steady = [r for r in records if 'time' in r and r.get('epoch', 0) >= 3]
    times = [r['time'] for r in steady]
    if name in TEACHER_ALONE:  # no losses to check: the log says the teacher ran throughout
        with open(osp.join(work_dir, 'train.log')) as f:
            log = f.read()
        if ('YOLOv5Distill: teacher forward in' not in log or 'Distillation has been stopped'
                in log or f'distilling epochs 1-{args.epochs} of {args.epochs}' not in log):
            sys.exit(f'[kd_loop_speed] {name}: the teacher did not run in every epoch: '
                     f'see {work_dir}/train.log')
    elif distill and not all('distill.loss_out_obj' in r for r in steady):
        sys.exit(f'[kd_loop_speed] {name}: iterations without distillation losses in '
                 f'{work_dir}: the timing would not be of distillation')
    data_times = [r['data_time'] for r in steady]
    with open(peak_file) as f:
        peak = int(f.read()) / 1024
    return dict(s_it=statistics.mean(times), data_s=statistics.mean(data_times),
                peak_mib=peak, iters=len(times))


def main():
    args = parse_args()
    data = osp.join(args.coco128, 'data.yaml')
    if not osp.isfile(data) or not osp.isfile(args.yolov5n):
        sys.exit(f'[kd_loop_speed] needs {data} and {args.yolov5n} (--coco128, --yolov5n)')
    os.makedirs(args.out, exist_ok=True)
    runs = variant_runs(args)
    results = {name: [] for name in runs}
    progress = Progress(args.rounds * len(runs), 'kd_loop_speed')
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for r in range(args.rounds):
            for i, (name, (variant, repo)) in enumerate(runs.items()):
                wd = osp.join(tmp, f'round{r}_{i}')
                start = time.time()
                res = run(args, variant, wd, data, repo)
                results[name].append(res)
                progress.step(f'round {r + 1}: {name} {res["s_it"]:.3f} s/it '
                              f'({res["data_s"]:.3f} waiting for data), '
                              f'peak {res["peak_mib"]:.0f} MiB', time.time() - start)
    plain = results[next(iter(runs))]
    base_mem = statistics.mean(x['peak_mib'] for x in plain)
    lines = [f'Whole training loop (tools/train.py), coco128 {args.img_size} px, batch 16, '
             f'{args.workers} dataloader workers, {args.epochs} epochs per run, mean s/it of '
             f'epochs 3-{args.epochs}, {args.rounds} alternating rounds, '
             f'{os.cpu_count()} CPU cores', '',
             '| variant | s/it (per round) | vs plain, same round: mean (range) | '
             'waiting for data s/it | peak RSS MiB | vs plain |',
             '|---|---|---|---|---|---|']
    for name, res in results.items():
        s_it = statistics.mean(x['s_it'] for x in res)
        ratios = [x['s_it'] / p['s_it'] for x, p in zip(res, plain)]
        mem = statistics.mean(x['peak_mib'] for x in res)
        data_s = statistics.mean(x['data_s'] for x in res)
        per_round = ', '.join(f'{x["s_it"]:.3f}' for x in res)
        lines.append(f'| {name} | {s_it:.3f} ({per_round}) | {statistics.mean(ratios):.2f}x '
                     f'({min(ratios):.2f}-{max(ratios):.2f}) | {data_s:.3f} | {mem:.0f} | '
                     f'{mem - base_mem:+.0f} |')
    table = '\n'.join(lines)
    print('\n' + table)
    with open(osp.join(args.out, 'report.md'), 'w') as f:
        f.write(table + '\n')


if __name__ == '__main__':
    main()
