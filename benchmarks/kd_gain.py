"""Does distillation help the student? Plain vs distilled students, same schedule and seeds.

    # real data, fine-tuning, with the configs users run: mmyolo's YOLOv5-n COCO config
    # (plain) and the COCO s-to-n distillation config with --t-cfg for an n teacher; the
    # official YOLOv5n is the student's start and the teacher; coco128 split in two
    # halves, train on one and evaluate on the other, then swap
    python benchmarks/kd_gain.py real [--seeds 0 1 2] [--variants plain kd-out ...]
    # the demo task of `make demo` (its data and schedules, and its runs: the teacher and
    # each seed's plain and default-recipe students are shared with the demo)
    python benchmarks/kd_gain.py demo [--seeds 0 1 2] [--variants plain kd-out ...]
    # labels on a quarter of the training images, the other three quarters given as
    # unlabeled images (--unlabeled): plain and kd-out on the labeled quarter alone, kd-out
    # with the unlabeled images, and kd-out on the labeled quarter for as many iterations
    # (twice the epochs); real: coco128's training half, demo: make demo's set
    python benchmarks/kd_gain.py real-unlabeled [--seeds 0 1 2]
    python benchmarks/kd_gain.py demo-unlabeled [--seeds 0 1 2] [--unlabeled-images N]

Every run is a plain ``tools/train.py`` run (plain and distilled launched the same way:
``--data``, ``--img-size``, ``--weights``, ``--t-weights``) whose log and checkpoints stay
in its work dir; a finished run is skipped when the script is run again, an interrupted
one is resumed. At the end: mean and std of the final mAP@.5:.95 / mAP@.5 per variant,
the paired per-seed difference to the plain student with its standard error and a verdict
(beyond 2 standard errors or not), as a table on stdout and in ``report.md``, and
``curves.png`` (val mAP per epoch, mean and min-max band per variant).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools', 'misc'))  # the demo's run helpers

from train_runs import (DEMO_KD_CFG, DEMO_STUDENT_CFG, DEMO_TASK,  # noqa: E402
                        DEMO_TEACHER_CFG, Progress, RunFailedError, demo_data,
                        demo_data_options, demo_run_dirs, fmt_seconds, schedule_options,
                        train_run, val_history)

SHARED = osp.join(osp.dirname(REPO), 'shared')
#: The real regime runs what the README tells users to run (mmyolo's 8xb16 300-epoch COCO
#: schedule, cut to --epochs; the distillation stop scales with it).
KD_COCO_S2N = osp.join(REPO, 'configs', 'distill', 'yolov5',
                       'kd-out_yolov5_s-to-n-v61_syncbn_fast_8xb16-300e_coco.py')
MMYOLO_N = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'
#: 2 cores: mmyolo's COCO configs ask for 8 training and 2 validation workers
REAL_LOADERS = ['train_dataloader.num_workers=2', 'val_dataloader.num_workers=1',
                'test_dataloader.num_workers=1']

#: What each variant changes in the distillation config (a child config is written per
#: variant), and extra command-line switches. ``None``: the plain student.
OUT_LOSS = 'model.distiller.distill_losses.loss_out'
VARIANTS: Dict[str, Optional[dict]] = {
    'plain': None,
    'kd-out': dict(),  # the shipped default
    'kd-out-w0.5': dict(loss_out=dict(loss_weight=0.5)),
    'kd-out-w2': dict(loss_out=dict(loss_weight=2.0)),
    'kd-out-w4': dict(loss_out=dict(loss_weight=4.0)),
    'kd-out-tau2': dict(loss_out=dict(tau=2.0)),
    'kd-out-nostop': dict(num_last_epochs=0),
    'kd-out-mse-w10': dict(loss_out=dict(_delete_=True, type='YOLOv5MSEOutputDistillLoss',
                                         loss_weight=10.0)),
    'kd-out-mse-w0.1': dict(loss_out=dict(_delete_=True, type='YOLOv5MSEOutputDistillLoss',
                                          loss_weight=0.1)),
    'kd-out-cwd': dict(switch='--d-feature'),
    # the *-unlabeled regimes: the default recipe with the unlabeled images in each batch
    # (--unlabeled distils to the end: it switches the configs' stop off). The variants
    # measured when the unlabeled images' default weight was 1 pass it (--unlabeled-weight)
    'kd-out+unlabeled': dict(unlabeled=0.5),
    'kd-out+unlabeled-r0.25': dict(unlabeled=0.25, weight=1.0),
    'kd-out+unlabeled-r0.75': dict(unlabeled=0.75, weight=1.0),
    # at equal compute: the student sees the unlabeled images strongly augmented (two
    # views, --unlabeled-aug strong), their output distillation weighs 1, 2 (the default)
    # or more (--unlabeled-weight), or both
    'kd-out+unlabeled-2view': dict(unlabeled=0.5, aug='strong', weight=1.0),
    'kd-out+unlabeled-w1': dict(unlabeled=0.5, weight=1.0),
    'kd-out+unlabeled-w2': dict(unlabeled=0.5, weight=2.0),
    'kd-out+unlabeled-w3': dict(unlabeled=0.5, weight=3.0),
    'kd-out+unlabeled-2view-w2': dict(unlabeled=0.5, aug='strong', weight=2.0),
    'kd-out+unlabeled-2view-w3': dict(unlabeled=0.5, aug='strong', weight=3.0),
    # the unlabeled images get the detection loss too, against the teacher's boxes
    # scoring above 0.5 (--unlabeled-pseudo-labels), alone and with the variants above
    'kd-out+unlabeled-pl': dict(unlabeled=0.5, weight=1.0, pseudo_labels=0.5),
    'kd-out+unlabeled-w2-pl': dict(unlabeled=0.5, weight=2.0, pseudo_labels=0.5),
    'kd-out+unlabeled-2view-pl': dict(unlabeled=0.5, aug='strong', weight=1.0,
                                      pseudo_labels=0.5),
    'kd-out+unlabeled-2view-w2-pl': dict(unlabeled=0.5, aug='strong', weight=2.0,
                                         pseudo_labels=0.5),
    # the control of kd-out+unlabeled: the labeled images alone for as many iterations
    # (half of each batch unlabeled doubles an epoch's iterations), twice the epochs
    'kd-out-2x-epochs': dict(epochs_factor=2),
    # the same at another learning rate (the configs' is 0.01): how much of a difference
    # between the recipes at equal iterations is the size of the steps?
    'kd-out-2x-epochs-lr0.005': dict(epochs_factor=2, lr=0.005),
    'kd-out-2x-epochs-lr0.015': dict(epochs_factor=2, lr=0.015),
    # ... and the unlabeled images at that rate: do they add to what the smaller step gives?
    'kd-out+unlabeled-w1-lr0.005': dict(unlabeled=0.5, weight=1.0, lr=0.005),
    'kd-out+unlabeled-w2-lr0.005': dict(unlabeled=0.5, weight=2.0, lr=0.005),
    # the control with the labeled images' distillation weighted 2: is what the unlabeled
    # images at weight 2 bring the images, or the larger share of distillation?
    'kd-out-w2-2x-epochs': dict(loss_out=dict(loss_weight=2.0), epochs_factor=2),
    # a longer schedule, distilling to the end, at equal iterations: do the unlabeled
    # images pay where the labeled ones alone have been seen many times over?
    'kd-out+unlabeled-2x-epochs': dict(unlabeled=0.5, weight=1.0, epochs_factor=2),
    'kd-out+unlabeled-w2-2x-epochs': dict(unlabeled=0.5, weight=2.0, epochs_factor=2),
    'kd-out-nostop-4x-epochs': dict(num_last_epochs=0, epochs_factor=4),
    # the ceiling at equal iterations: every training image labeled (the unlabeled ones'
    # labels given back), half the epochs: as many iterations as the half-unlabeled
    # recipes (an epoch of all labels is twice one of mixed batches); no unlabeled recipe
    # has more information than this run
    'kd-out-all-labels-half-epochs': dict(all_labels=True, epochs_factor=0.5),
    # ... with the schedule of the unlabeled recipes, so that only the data differ: they
    # distil to the end and warm up for the configs' floor of iterations (warmup_mim_iter,
    # 50 on the demo task; mmyolo's 3 warm-up epochs are 96 iterations of all labels but
    # 24 of mixed batches). Against them, the labeled quarter with the same schedule (its
    # 3 warm-up epochs are 24 iterations: the floor as well)
    'kd-out-all-labels-half-epochs-nostop': dict(all_labels=True, epochs_factor=0.5,
                                                 num_last_epochs=0, warmup_epochs=0),
    'kd-out-nostop-2x-epochs': dict(num_last_epochs=0, epochs_factor=2),
    # ... and at the learning rate that suits coco128's fine-tune better
    'kd-out-all-labels-half-epochs-lr0.005': dict(all_labels=True, epochs_factor=0.5,
                                                  lr=0.005),
}
#: the *-unlabeled regimes' default: with the same-iteration control, so the table says
#: whether the unlabeled images or the extra iterations make the difference
UNLABELED_VARIANTS = ['plain', 'kd-out', 'kd-out+unlabeled', 'kd-out-2x-epochs']
#: Of each training set, every LABELED_EVERY-th image keeps its labels.
LABELED_EVERY = 4
#: ``--unlabeled-images`` beyond the demo's own: generated with the demo set's seed plus
#: this, so they are never the demo's training or val images.
EXTRA_SEED_OFFSET = 1000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('regime', choices=['real', 'demo', 'real-unlabeled', 'demo-unlabeled'])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS),
                        help='default: plain kd-out (and kd-out+unlabeled for the '
                        '*-unlabeled regimes)')
    parser.add_argument('--epochs', type=int, default=30, help='real regime')
    parser.add_argument('--val-interval', type=int, default=5, help='real regime')
    parser.add_argument('--out', help='work folder (default: work_dirs/kd_gain/<regime>)')
    parser.add_argument('--coco128', default=osp.join(SHARED, 'data', 'coco128'),
                        help='real regime: coco128 in Ultralytics layout')
    parser.add_argument('--yolov5n', default=osp.join(SHARED, 'weights', 'yolov5n.pt'),
                        help='real regime: the official YOLOv5n checkpoint')
    parser.add_argument('--img-size', type=int, default=320, help='real regime')
    parser.add_argument('--unlabeled-images', type=int, metavar='N',
                        help='demo-unlabeled regime: give N unlabeled images (default: the '
                        "demo's own three quarters of its training set; beyond those, more "
                        'generated alike, with another seed)')
    args = parser.parse_args()
    unlabeled = args.regime.endswith('-unlabeled')
    if args.unlabeled_images is not None and (args.regime != 'demo-unlabeled' or
                                              args.unlabeled_images < 1):
        parser.error('--unlabeled-images N (N >= 1) is for the demo-unlabeled regime')
    args.variants = args.variants or (UNLABELED_VARIANTS if unlabeled else ['plain', 'kd-out'])
    misplaced = [v for v in args.variants if not unlabeled and
                 any(key in variant_spec(v) for key in ('unlabeled', 'all_labels'))]
    if misplaced:
        parser.error(f'{misplaced} need a regime with unlabeled images (their labels, for '
                     'all_labels variants): use the real-unlabeled or demo-unlabeled regime')
    epochs = args.epochs if args.regime.startswith('real') else DEMO_TASK['epochs']
    uneven = [v for v in args.variants
              if (epochs * variant_spec(v).get('epochs_factor', 1)) % 1]
    if uneven:
        parser.error(f'{uneven} scale the run\'s {epochs} epochs to a fraction: give an '
                     '--epochs that they divide (equal iterations would not hold)')
    return args


def variant_spec(name: str) -> dict:
    """What :data:`VARIANTS` says of a variant (empty for the plain student)."""
    return VARIANTS[name] or {}


def scaled(name: str, epochs: int, val_interval: int) -> tuple:
    """A variant's epochs and validation interval (``epochs_factor`` times the regime's;
    whole epochs: :func:`parse_args` refuses a fraction, the validation interval is rounded,
    the last epoch being validated in any case)."""
    factor = variant_spec(name).get('epochs_factor', 1)
    return int(epochs * factor), max(int(val_interval * factor + 0.5), 1)


def variant_switches(name: str, unlabeled: Optional[str]) -> List[str]:
    """Command-line switches of a distilled variant (``--d-feature``, ``--unlabeled`` and
    its ``-ratio``, ``-aug``, ``-weight``, ``-pseudo-labels``)."""
    spec = variant_spec(name)
    extra = [spec['switch']] if spec.get('switch') else []
    if spec.get('unlabeled'):
        extra += ['--unlabeled', unlabeled, '--unlabeled-ratio', str(spec['unlabeled'])]
        if spec.get('aug'):
            extra += ['--unlabeled-aug', spec['aug']]
        if spec.get('weight'):
            extra += ['--unlabeled-weight', str(spec['weight'])]
        if spec.get('pseudo_labels'):
            extra += ['--unlabeled-pseudo-labels', str(spec['pseudo_labels'])]
    return extra


# --- runs ---------------------------------------------------------------------------------
def variant_config(name: str, kd_config: str, out: str) -> Optional[str]:
    """A child config of ``kd_config`` with the variant's changes (None for plain)."""
    spec = VARIANTS[name]
    if spec is None:
        return None
    os.makedirs(osp.join(out, 'configs'), exist_ok=True)
    path = osp.join(out, 'configs', f'{name}.py')
    lines = [f'_base_ = {kd_config!r}']
    if 'loss_out' in spec:
        lines.append(f'model = dict(distiller=dict(distill_losses=dict(loss_out='
                     f'{spec["loss_out"]!r})))')
    if 'lr' in spec:
        lines.append(f'optim_wrapper = dict(optimizer=dict(lr={spec["lr"]!r}))')
    if 'warmup_epochs' in spec:
        lines.append('default_hooks = dict(param_scheduler=dict(warmup_epochs='
                     f'{spec["warmup_epochs"]!r}))')
    if 'num_last_epochs' in spec:
        lines.append('custom_hooks = [h for h in _base_.custom_hooks if h["type"] != '
                     '"mmkd_yolo.StopDistillLastEpochsHook"] + [dict(type='
                     f'"mmkd_yolo.StopDistillLastEpochsHook", num_last_epochs='
                     f'{spec["num_last_epochs"]})]')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


# --- regimes ------------------------------------------------------------------------------
def real_splits(args, out: str, labeled_every: int = 1) -> Dict[str, tuple]:
    """Two data.yaml files: train on one half of coco128, validate on the other.

    With ``labeled_every`` > 1 only every ``labeled_every``-th training image keeps its
    labels: split -> (data.yaml, .txt list of the other training images); else
    split -> (data.yaml, None)."""
    images = sorted(glob.glob(osp.join(args.coco128, 'images', '**', '*.jpg'), recursive=True))
    if len(images) < 16:
        sys.exit(f'[kd_gain] no coco128 images under {args.coco128} (--coco128)')
    with open(osp.join(args.coco128, 'data.yaml')) as f:
        names = [line.strip()[2:] for line in f if line.strip().startswith('- ')]
    half = len(images) // 2
    halves = {'A': images[:half], 'B': images[half:]}
    os.makedirs(out, exist_ok=True)
    for key, imgs in halves.items():
        with open(osp.join(out, f'half{key}.txt'), 'w') as f:
            f.write('\n'.join(osp.abspath(p) for p in imgs) + '\n')
    splits = {}
    for train_half, val_half in (('A', 'B'), ('B', 'A')):
        train, rest = f'half{train_half}.txt', None
        if labeled_every > 1:
            imgs = halves[train_half]
            train = f'half{train_half}_labeled1of{labeled_every}.txt'
            rest = osp.join(out, f'half{train_half}_unlabeled.txt')
            with open(osp.join(out, train), 'w') as f:
                f.write('\n'.join(osp.abspath(p) for p in imgs[::labeled_every]) + '\n')
            with open(rest, 'w') as f:
                f.write('\n'.join(osp.abspath(p) for i, p in enumerate(imgs)
                                  if i % labeled_every) + '\n')
        path = osp.join(out, f'train{train_half}_val{val_half}'
                        f'{"_1of" + str(labeled_every) if labeled_every > 1 else ""}.yaml')
        with open(path, 'w') as f:
            json.dump(dict(path=out, train=train, val=f'half{val_half}.txt',
                           names=names), f)  # JSON is YAML
        splits[f'{train_half}->{val_half}'] = (path, rest)
    return splits


def run_real(args, out: str) -> Dict[str, Dict[tuple, str]]:
    if not osp.isfile(args.yolov5n):
        sys.exit(f'[kd_gain] {args.yolov5n} not found (--yolov5n)')
    splits = real_splits(args, out, LABELED_EVERY if args.regime == 'real-unlabeled' else 1)
    whole = None  # every training image labeled, for all_labels variants
    if any(variant_spec(v).get('all_labels') for v in args.variants):
        whole = real_splits(args, out)
    img = args.img_size
    runs = {v: {} for v in args.variants}
    progress = Progress(len(args.variants) * len(args.seeds) * len(splits), 'kd_gain')
    for seed in args.seeds:
        for split, (data, unlabeled) in splits.items():
            for variant in args.variants:
                cfg = variant_config(variant, KD_COCO_S2N, out) or MMYOLO_N
                labels = whole[split][0] if variant_spec(variant).get('all_labels') \
                    else data
                extra = ['--data', labels, '--img-size', str(img), '--weights', args.yolov5n]
                if VARIANTS[variant] is not None:
                    extra += ['--t-weights', args.yolov5n, '--t-cfg', MMYOLO_N]
                    extra += variant_switches(variant, unlabeled)
                wd = osp.join(out, variant, f'split{split.replace("->", "")}_seed{seed}')
                epochs, val_interval = scaled(variant, args.epochs, args.val_interval)
                took = train_run(wd, cfg, extra, schedule_options(val_interval, seed) +
                                 REAL_LOADERS, epochs=epochs)
                progress.step(f'{variant}, {split}, seed {seed}', took)
                runs[variant][(split, seed)] = wd
    return runs


def run_demo(args, out: str) -> Dict[str, Dict[tuple, str]]:
    """The demo task and schedules of ``make demo`` (DEMO_TASK), sharing its runs: the
    teacher, and the plain and default-recipe students of each seed, are the demo's."""
    task = DEMO_TASK
    root = demo_data(task)
    data_opts = demo_data_options(root)
    size = ['--img-size', str(task['img_size'])]
    progress = Progress(1 + len(args.variants) * len(args.seeds), 'kd_gain')
    teacher_dir = demo_run_dirs(task, 0)['teacher']
    te = task['teacher_epochs']
    took = train_run(teacher_dir, DEMO_TEACHER_CFG, size,
                     schedule_options(max(te // 4, 1), task['data_seed']) + data_opts,
                     epochs=te)
    progress.step('teacher YOLOv5-s', took)
    teacher_ckpt = osp.join(teacher_dir, f'epoch_{te}.pth')
    unlabeled, suffix, quarter_opts = None, '', []
    if args.regime == 'demo-unlabeled':
        labeled_json, unlabeled = demo_quarter(root, out)
        quarter_opts = [f'train_dataloader.dataset.ann_file={labeled_json}']
        if args.unlabeled_images is not None:
            unlabeled, suffix = demo_unlabeled_images(task, unlabeled, out,
                                                      args.unlabeled_images)
    runs = {v: {} for v in args.variants}
    for seed in args.seeds:
        shared = demo_run_dirs(task, seed)
        for variant in args.variants:
            cfg = variant_config(variant, DEMO_KD_CFG, out) or DEMO_STUDENT_CFG
            extra = list(size)
            if VARIANTS[variant] is not None:
                extra += ['--t-weights', teacher_ckpt]
                extra += variant_switches(variant, unlabeled)
            wd = osp.join(out, variant, f'seed{seed}')
            if variant_spec(variant).get('unlabeled'):
                wd += suffix  # runs on other unlabeled images are other runs
            if args.regime == 'demo':  # the demo's own runs
                wd = {'plain': shared['plain'], 'kd-out': shared['distilled']}.get(variant, wd)
            epochs, val_interval = scaled(variant, task['epochs'], task['val_interval'])
            labels = [] if variant_spec(variant).get('all_labels') else quarter_opts
            took = train_run(wd, cfg, extra,
                             schedule_options(val_interval, seed) + data_opts + labels,
                             epochs=epochs)
            progress.step(f'{variant}, seed {seed}', took)
            runs[variant][('demo', seed)] = wd
    return runs


def demo_quarter(root: str, out: str) -> tuple:
    """The demo's training labels on every LABELED_EVERY-th image: (COCO json of those,
    .txt list of the other images, given as unlabeled)."""
    with open(osp.join(root, 'annotations', 'train.json')) as f:
        coco = json.load(f)
    images = sorted(coco['images'], key=lambda img: img['id'])
    keep = {img['id'] for img in images[::LABELED_EVERY]}
    quarter = dict(coco, images=[img for img in images if img['id'] in keep],
                   annotations=[a for a in coco['annotations'] if a['image_id'] in keep])
    os.makedirs(out, exist_ok=True)
    labeled_json = osp.join(out, f'train_labeled1of{LABELED_EVERY}.json')
    with open(labeled_json, 'w') as f:
        json.dump(quarter, f)
    unlabeled = osp.join(out, 'train_unlabeled.txt')
    with open(unlabeled, 'w') as f:
        f.write('\n'.join(osp.join(osp.abspath(root), 'train', img['file_name'])
                          for img in images
                          if img['id'] not in keep) + '\n')
    return labeled_json, unlabeled


def demo_unlabeled_images(task: dict, own_list: str, out: str, n: int) -> tuple:
    """The first ``n`` of the demo's unlabeled images and, past its own, of images made
    by the demo set's generator (same size and object statistics) with another seed,
    written once under ``out``.

    Args:
        task (dict): :data:`DEMO_TASK` or one of its shape.
        own_list (str): The .txt list of the demo's own unlabeled images
            (:func:`demo_quarter`).
        out (str): The work folder.
        n (int): How many unlabeled images.

    Returns:
        tuple: The .txt list of the ``n`` images, and the suffix of the work dirs of the
        runs that use them (empty for the demo's own images, all of them).
    """
    with open(own_list) as f:
        images = [line.strip() for line in f if line.strip()]
    own = len(images)
    if n > own:
        seed = task['data_seed'] + EXTRA_SEED_OFFSET
        root = osp.join(out, 'extra_unlabeled_{img_size}px_seed{seed}'.format(
            img_size=task['img_size'], seed=seed))
        made = osp.join(root, 'annotations', 'train.json')
        count = 0
        if osp.isfile(made):
            with open(made) as f:
                count = len(json.load(f)['images'])
        if count < n - own:  # one generator stream: a larger set starts with the smaller
            from mmkd_yolo.datasets import make_shapes_dataset
            make_shapes_dataset(root, num_train=n - own, num_val=0,
                                img_size=task['img_size'], seed=seed)
        images += [osp.join(osp.abspath(root), 'train', f'train_{i:05d}.jpg')
                   for i in range(n - own)]
    path = osp.join(out, f'train_unlabeled_{n}.txt')
    with open(path, 'w') as f:
        f.write('\n'.join(images[:n]) + '\n')
    return path, ('' if n == own else f'_u{n}')


# --- report -------------------------------------------------------------------------------
def summarise(runs: Dict[str, Dict[tuple, str]], title: str) -> str:
    finals = {v: {k: val_history(wd)[-1] for k, wd in r.items() if val_history(wd)}
              for v, r in runs.items()}
    lines = [title, '',
             '| variant | runs | mAP@.5:.95 mean ± std | mAP@.5 mean ± std | '
             'vs plain: mean diff ± SE (points) | wins | verdict |',
             '|---|---|---|---|---|---|---|']
    plain = finals.get('plain', {})
    for variant, res in finals.items():
        if not res:
            continue
        maps = [r['mAP'] for r in res.values()]
        map50 = [r['mAP50'] for r in res.values()]
        row = (f'| {variant} | {len(maps)} | {_mean_std(maps)} | {_mean_std(map50)} | ')
        paired = [res[k]['mAP'] - plain[k]['mAP'] for k in res if k in plain]
        if variant in ('plain', 'teacher') or not paired:
            row += '- | - | - |'
        else:
            mean = statistics.mean(paired)
            se = statistics.stdev(paired) / math.sqrt(len(paired)) if len(paired) > 1 else 0.0
            verdict = ('gain beyond 2 SE' if se and mean > 2 * se else
                       'loss beyond 2 SE' if se and mean < -2 * se else 'within noise')
            wins = sum(d > 0 for d in paired)
            row += f'{100 * mean:+.1f} ± {100 * se:.1f} | {wins}/{len(paired)} | {verdict} |'
        lines.append(row)
    base = finals.get('kd-out', {})
    others = [v for v in finals if v not in ('plain', 'kd-out', 'teacher') and finals[v]]
    if base and any(variant_spec(v).get('unlabeled') for v in others):
        lines += ['', 'Against kd-out on the labeled images alone (paired by split and seed):',
                  '', '| variant | mean diff ± SE (points) | wins | verdict |',
                  '|---|---|---|---|']
        for variant in others:
            paired = [finals[variant][k]['mAP'] - base[k]['mAP'] for k in finals[variant]
                      if k in base]
            if len(paired) < 2:
                continue
            mean = statistics.mean(paired)
            se = statistics.stdev(paired) / math.sqrt(len(paired))
            verdict = ('gain beyond 2 SE' if se and mean > 2 * se else
                       'loss beyond 2 SE' if se and mean < -2 * se else 'within noise')
            lines.append(f'| {variant} | {100 * mean:+.1f} ± {100 * se:.1f} | '
                         f'{sum(d > 0 for d in paired)}/{len(paired)} | {verdict} |')
    lines += ['', 'Per run (final mAP@.5:.95):', '']
    keys = sorted({k for res in finals.values() for k in res})
    lines.append('| variant | ' + ' | '.join(f'{s} seed {d}' for s, d in keys) + ' |')
    lines.append('|---|' + '---|' * len(keys))
    for variant, res in finals.items():
        lines.append(f'| {variant} | ' + ' | '.join(
            f'{res[k]["mAP"]:.3f}' if k in res else '-' for k in keys) + ' |')
    return '\n'.join(lines)


def _mean_std(values: List[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{statistics.mean(values):.3f} ± {std:.3f}'


def plot(runs: Dict[str, Dict[tuple, str]], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant, res in runs.items():
        if variant == 'teacher':
            continue
        histories = [val_history(wd) for wd in res.values()]
        histories = [h for h in histories if h]
        if not histories:
            continue
        epochs = sorted({r['epoch'] for h in histories for r in h})
        per_epoch = [[r['mAP'] for h in histories for r in h if r['epoch'] == e] for e in epochs]
        mean = [statistics.mean(v) for v in per_epoch]
        ax.plot(epochs, mean, marker='o', label=f'{variant} (n={len(histories)})')
        ax.fill_between(epochs, [min(v) for v in per_epoch], [max(v) for v in per_epoch],
                        alpha=0.2)
    ax.set_xlabel('epoch')
    ax.set_ylabel('val mAP@.5:.95')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    args = parse_args()
    out = osp.abspath(args.out or osp.join(REPO, 'work_dirs', 'kd_gain', args.regime))
    start = time.time()
    try:
        runs = (run_real(args, out) if args.regime.startswith('real') else
                run_demo(args, out))
    except RunFailedError as e:
        sys.exit(f'[kd_gain] {e}\nrerun to resume it')
    labels = (f'; labels on 1 in {LABELED_EVERY} training images, the others unlabeled '
              '(plain and kd-out: the labeled ones only)' if args.regime.endswith('-unlabeled')
              else '')
    if args.unlabeled_images is not None:
        labels += (f'; {args.unlabeled_images} unlabeled images (past the demo\'s own, '
                   f'generated alike with seed {DEMO_TASK["data_seed"] + EXTRA_SEED_OFFSET})')
    if args.regime.startswith('real'):
        title = (f'Real data, fine-tuning the official YOLOv5n (teacher: the same checkpoint, '
                 f'--t-cfg), mmyolo\'s COCO config and the COCO s-to-n distillation config, '
                 f'coco128 halves (train on one, evaluate on the other), '
                 f'{args.img_size} px, --epochs {args.epochs} (nothing else of the schedule '
                 f'set: decay, warm-up and distillation stop as the configs fit them), '
                 f'seeds {args.seeds}')
    else:
        title = (f'Demo task (make demo\'s data and schedules), YOLOv5-s teacher '
                 f'({DEMO_TASK["teacher_epochs"]} epochs) -> YOLOv5-n, {DEMO_TASK["epochs"]} '
                 f'epochs, seeds {args.seeds}')
    report = summarise(runs, title + labels)
    plot(runs, osp.join(out, 'curves.png'), f'kd_gain: {args.regime}')
    with open(osp.join(out, 'report.md'), 'w') as f:
        f.write(report + '\n\n![val mAP per epoch](curves.png)\n')
    print('\n' + report)
    print(f'\n[kd_gain] {fmt_seconds(time.time() - start)}; report: {out}/report.md, '
          f'curves: {out}/curves.png')


if __name__ == '__main__':
    main()
