"""The GPU check's measurements: tests, the distillation loop against the plain student, the
teacher at reduced precision against float32, the teacher's precision paths; one markdown
table.

    bash benchmarks/gpu_check.sh [--coco128 DIR] [--yolov5n PATH] [--plan auto|cuda|cpu]
        [--dry-run] [--skip-install] [--tests 'PYTEST ARGS'] [--epochs N] [--rounds N] ...

``gpu_check.sh`` installs the environment and then runs this file with the paths made
explicit; run on its own it does the same without the install. Plans:

* ``cuda``: YOLOv5-n <- s (``kd-out`` COCO config, the teacher a YOLOv5-s with random
  weights: the cost does not depend on them) at 640 px, batch 16, ``--amp`` for both runs
  and ``--t-precision fp16`` for the distilled one, from the official YOLOv5n, on coco128;
  plain and distilled runs alternate round by round, so machine noise hits both.
* ``cpu`` (no CUDA): the same steps on a tiny schedule at 160 px, the teacher in bf16, no
  ``--amp`` (mmengine's ``AmpOptimWrapper`` refuses to run without a GPU).

Seconds per iteration are the runs' own logged ``time`` scalars (each iteration's, not
mmyolo's 50-iteration average) after the first ``--skip-iters`` iterations. Peak memory
is written by the ``wrap`` sub-command, which runs ``tools/train.py`` / ``tools/test.py``
in its own process: resident set size of that process (data workers excluded) and
``torch.cuda.max_memory_allocated``. ``tools/test.py`` has no precision switch; the
teacher's reduced-precision mAP comes from ``wrap --net-precision``, which runs backbone,
neck and head under the autocast ``--t-precision`` gives the teacher in distillation and
casts the outputs back to float32 before decoding and NMS, as the distillation losses see
them. That comparison uses the official YOLOv5n (``--yolov5n``), not the random teacher of
the loop runs, whose mAP would mean nothing.

The precision paths are short distilled runs (one epoch each) with the official YOLOv5n as
teacher, so that it has float32 weights from a file: ``--t-precision auto`` (the choice and
its reason, as logged), ``bf16`` under ``--amp``, and that run resumed with ``fp32`` under
``--amp`` (logged outside the training step's autocast; the resumed teacher keeps the
file's float32 weights, not the checkpoint's bfloat16 ones: checked in its checkpoint).

Every step runs even when an earlier one failed (a GPU session is short: one run should
say as much as it can); the table marks what failed and the exit status is 1.
"""
from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import os.path as osp
import re
import shlex
import statistics
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
HERE = osp.relpath(osp.abspath(__file__), REPO)
PLAIN_CFG = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'
KD_CFG = 'configs/distill/yolov5/kd-out_yolov5_s-to-n-v61_syncbn_fast_8xb16-300e_coco.py'
FAST_SUITE = 'tests -m "not slow"'

PLANS = {
    'cuda': dict(img_size=640, batch=16, epochs=30, rounds=2, skip_iters=40, workers=8,
                 amp=True, t_precision='fp16'),
    'cpu': dict(img_size=160, batch=16, epochs=2, rounds=1, skip_iters=4, workers=2,
                amp=False, t_precision='bf16'),
}


#: The precision runs: (name, --t-precision, epochs, the run whose last checkpoint it resumes).
PRECISION_RUNS = (('auto', 'auto', 1, None), ('bf16', 'bf16', 1, None),
                  ('resume_fp32', 'fp32', 2, 'bf16'))
#: YOLOv5Distill's log line of what runs the teacher (TeacherRuntime.runtime_for).
TEACHER_LINE = re.compile(r"teacher forward in (.+?) on (\w+)\b.*?\(teacher_precision='(\w+)'"
                          r': (.+)\)$', re.M)
#: keep_float32_teacher's line on loading a checkpoint with a reduced-precision teacher.
KEPT_LINE = re.compile(r'the checkpoint holds the teacher in (\S+), as it ran: kept the '
                       r'float32 values of its \d+ tensors from .*$', re.M)


class StepFailed(Exception):
    """A step that did not give its result; the message says what to look at."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--coco128', required=True,
                        help='coco128 folder holding data.yaml, or the data.yaml itself')
    parser.add_argument('--yolov5n', required=True,
                        help='official YOLOv5n .pt: the students\' start and the teacher '
                        'whose precisions are compared')
    parser.add_argument('--plan', choices=['auto', 'cuda', 'cpu'], default='auto',
                        help='auto: cuda if torch.cuda.is_available(), else the CPU fallback; '
                        'cuda/cpu force the plan (with --dry-run: see its commands anywhere)')
    parser.add_argument('--dry-run', action='store_true', help='print the commands only')
    parser.add_argument('--tests', help=f'pytest arguments (default: {FAST_SUITE})')
    parser.add_argument('--out', default=osp.join(REPO, 'work_dirs', 'gpu_check'))
    parser.add_argument('--install-status', default='not run (use benchmarks/gpu_check.sh)',
                        help='what gpu_check.sh says of its install step, for the table')
    for key, kind in (('img_size', int), ('batch', int), ('epochs', int), ('rounds', int),
                      ('skip_iters', int), ('workers', int)):
        parser.add_argument('--' + key.replace('_', '-'), type=kind,
                            help='default: ' + ', '.join(f'{p} {PLANS[p][key]}' for p in PLANS))
    parser.add_argument('--t-precision', choices=['auto', 'fp32', 'bf16', 'fp16'],
                        help='teacher precision of the distilled run and of the mAP '
                        'comparison (default: cuda fp16, cpu bf16)')
    return parser.parse_args(argv)


def resolve_plan(args) -> dict:
    """The plan's settings with the command line's overrides; ``name`` and ``device``."""
    name, device = args.plan, None
    if (name == 'cuda' and not args.dry_run) or name == 'auto':
        try:
            import torch
        except ImportError:
            if not args.dry_run:
                raise StepFailed('torch is not importable: run benchmarks/gpu_check.sh '
                                 '(its install step) first')
            torch = None
        cuda = bool(torch is not None and torch.cuda.is_available())
        if name == 'cuda' and not cuda and not args.dry_run:
            raise StepFailed('--plan cuda, but torch.cuda.is_available() is False '
                             f'(torch {torch.__version__}, built for CUDA {torch.version.cuda})')
        if name == 'auto':
            name = 'cuda' if cuda else 'cpu'
        if cuda:
            device = (f'{torch.cuda.get_device_name(0)}, torch {torch.__version__}, '
                      f'CUDA {torch.version.cuda}')
    if device is None and name == 'cuda':
        device = 'CUDA (--plan cuda, dry run: not checked)'
    elif device is None:
        device = f'{cpu_name()}, {os.cpu_count()} cores, no CUDA used'
    plan = dict(PLANS[name], name=name, device=device)
    for key in plan:
        if getattr(args, key, None) is not None:
            plan[key] = getattr(args, key)
    return plan


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            return re.search(r'model name\s*:\s*(.*)', f.read()).group(1).strip()
    except (OSError, AttributeError):
        return 'CPU'


def data_yaml(coco128: str) -> str:
    return coco128 if coco128.endswith(('.yaml', '.yml')) else osp.join(coco128, 'data.yaml')


# --- commands ------------------------------------------------------------------------------

def wrapped(tool: str, out_json: str, net_precision: str = None) -> list:
    """``python gpu_check.py wrap ...`` running ``tool`` and writing its peaks to out_json."""
    cmd = [sys.executable, HERE, 'wrap', '--out', out_json]
    if net_precision:
        cmd += ['--net-precision', net_precision]
    return cmd + ['--', tool]


def train_command(plan, distilled: bool, work_dir: str, data: str, yolov5n: str,
                  t_precision: str = None, epochs: int = None, teacher: str = None,
                  resume: str = None) -> list:
    """A training run of the plan; the keywords override the plan's teacher precision
    and epochs, give the teacher's weights (a YOLOv5-n: ``--t-cfg``) and resume."""
    cmd = wrapped('tools/train.py', osp.join(work_dir, 'peaks.json'))
    cmd += [KD_CFG if distilled else PLAIN_CFG, '--work-dir', work_dir, '--data', data,
            '--img-size', str(plan['img_size']), '--weights', yolov5n]
    if plan['amp']:
        cmd.append('--amp')
    if distilled:
        cmd += ['--t-precision', t_precision or plan['t_precision']]
    if teacher:
        cmd += ['--t-weights', teacher, '--t-cfg', PLAIN_CFG]
    if resume:
        cmd += ['--resume', resume]
    epochs = epochs or plan['epochs']
    batch, workers = plan['batch'], plan['workers']
    # no validation: mmengine's loop also validates at the last epoch unless val_begin is
    # past it, and these runs measure training alone
    opts = [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs + 1}',
            f'train_cfg.val_begin={epochs + 1}',
            f'default_hooks.checkpoint.interval={epochs}', 'default_hooks.logger.interval=1',
            # each iteration's own time: mmyolo's window of 50 would average the first
            # iterations' warm-up into the steady state
            'log_processor.window_size=1',
            f'train_dataloader.batch_size={batch}',
            f'optim_wrapper.optimizer.batch_size_per_gpu={batch}',
            f'train_dataloader.num_workers={workers}',
            f'train_dataloader.persistent_workers={workers > 0}', 'randomness.seed=0']
    if distilled:
        # the config stops distillation for the last 1/15 of the run: time distillation
        # throughout (the second custom hook is StopDistillLastEpochsHook)
        opts.append('custom_hooks.1.num_last_epochs=0')
    return cmd + ['--cfg-options', *opts]


def test_command(plan, precision: str, work_dir: str, data: str, yolov5n: str) -> list:
    cmd = wrapped('tools/test.py', osp.join(work_dir, 'peaks.json'), precision)
    workers = plan['workers']
    return cmd + [PLAIN_CFG, yolov5n, '--data', data, '--img-size', str(plan['img_size']),
                  '--work-dir', work_dir, '--cfg-options',
                  f'test_dataloader.num_workers={workers}',
                  f'test_dataloader.persistent_workers={workers > 0}']


def precision_commands(plan, out: str, data: str, yolov5n: str) -> dict:
    """The precision runs' commands, by name (:data:`PRECISION_RUNS`)."""
    commands = {}
    for name, t_precision, epochs, resume in PRECISION_RUNS:
        resume = resume and osp.join(out, f'precision_{resume}', 'epoch_1.pth')
        commands[name] = train_command(plan, True, osp.join(out, f'precision_{name}'), data,
                                       yolov5n, t_precision, epochs, yolov5n, resume)
    return commands


def pytest_command(tests: str) -> list:
    return [sys.executable, '-m', 'pytest', *shlex.split(tests), '-q', '-p', 'no:cacheprovider']


def show(cmd: list) -> str:
    return shlex.join(cmd)


# --- running and reading ---------------------------------------------------------------------

def run_logged(cmd: list, log_path: str, what: str) -> float:
    """Run cmd in the repo with output to log_path; seconds taken. StepFailed on failure."""
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [REPO, os.environ.get('PYTHONPATH')])))
    start = time.time()
    with open(log_path, 'w') as log:
        log.write('$ ' + show(cmd) + '\n')
        log.flush()
        proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    took = time.time() - start
    if proc.returncode:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-15:])
        raise StepFailed(f'{what} exited with status {proc.returncode} after {took:.0f}s; '
                         f'log: {log_path}\n--- last lines ---\n{tail}')
    return took


def read_peaks(work_dir: str) -> dict:
    path = osp.join(work_dir, 'peaks.json')
    if not osp.isfile(path):
        raise StepFailed(f'{path} was not written')
    with open(path) as f:
        return json.load(f)


def loop_times(work_dir: str, skip_iters: int, distilled: bool) -> dict:
    """Mean logged s/it and data-wait s/it of the iterations after the first skip_iters."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise StepFailed(f'no scalars.json under {work_dir}: the run logged nothing')
    with open(files[-1]) as f:
        records = [json.loads(line) for line in f if line.strip()]
    train = [r for r in records if 'time' in r and 'loss' in r]
    steady = [r for r in train if r['step'] > skip_iters]
    if not steady:
        raise StepFailed(f'{work_dir}: {len(train)} iterations logged, none after the first '
                         f'{skip_iters} (--skip-iters): use more --epochs')
    if distilled and not all(any(k.startswith('distill.') for k in r) for r in steady):
        raise StepFailed(f'{work_dir}: iterations without distillation losses: the timing '
                         'would not be of distillation')
    return dict(s_it=statistics.mean(r['time'] for r in steady),
                data_s=statistics.mean(r['data_time'] for r in steady), iters=len(steady))


# --- the steps -------------------------------------------------------------------------------

def step_tests(args, plan, out) -> tuple:
    """(result, detail) for the table."""
    tests = args.tests or FAST_SUITE
    log = osp.join(out, 'pytest.log')
    took = run_logged(pytest_command(tests), log, f'pytest {tests}')
    with open(log) as f:
        summary = [line for line in f if re.search(r'\d+ (passed|failed|error)', line)]
    note = ('' if args.tests else '; tests/ has no CUDA-only tests (none checks '
            'torch.cuda), so the fast suite runs: the same code, on the device the tests '
            'choose (CPU)')
    counts = re.sub(r' in [\d.]+s.*', '', summary[-1].strip(' =\n')) if summary else 'passed'
    return f'ok: {counts}, {took:.0f}s', f'pytest {tests}{note}'


def step_loop(args, plan, out, data, failures) -> dict:
    """Plain and distilled runs, alternating; per variant a list of per-round results."""
    results = {'plain': [], 'distilled': []}
    for r in range(plan['rounds']):
        for variant in results:
            distilled = variant == 'distilled'
            wd = osp.join(out, f'round{r}_{variant}')
            what = f'round {r + 1}/{plan["rounds"]}: {variant} training run'
            try:
                took = run_logged(train_command(plan, distilled, wd, data, args.yolov5n),
                                  osp.join(wd, 'train.log'), what)
                res = dict(loop_times(wd, plan['skip_iters'], distilled), **read_peaks(wd))
            except StepFailed as e:
                failures.append(str(e))
                say(f'{what}: FAILED ({str(e).splitlines()[0]})')
                results[variant].append(None)
                continue
            results[variant].append(res)
            say(f'{what}: {res["s_it"]:.3f} s/it over {res["iters"]} iterations '
                f'({res["data_s"]:.3f} waiting for data), peak RSS {res["peak_rss_mib"]:.0f} '
                f'MiB, CUDA peak {fmt(res["cuda_peak_mib"], ".0f")} (MiB), {took:.0f}s')
    return results


def step_teacher(args, plan, out, data, failures) -> dict:
    maps = {}
    for precision in ('fp32', plan['t_precision']):
        wd = osp.join(out, f'teacher_{precision}')
        what = f'teacher mAP in {precision} (tools/test.py)'
        try:
            took = run_logged(test_command(plan, precision, wd, data, args.yolov5n),
                              osp.join(wd, 'test.log'), what)
            metrics = read_peaks(wd)['metrics']
            maps[precision] = (metrics['coco/bbox_mAP'], metrics['coco/bbox_mAP_50'])
        except (StepFailed, KeyError) as e:
            failures.append(f'{what}: {e}')
            say(f'{what}: FAILED')
            continue
        say(f'{what}: mAP {maps[precision][0]:.4f}, mAP@.5 {maps[precision][1]:.4f}, '
            f'{took:.0f}s')
    return maps


def teacher_line(log_path: str) -> re.Match:
    """The run's log line of what ran its teacher forward."""
    with open(log_path) as f:
        found = TEACHER_LINE.search(f.read())
    if not found:
        raise StepFailed(f'{log_path}: no "teacher forward in ..." line')
    return found


def teacher_values(checkpoint: str) -> tuple:
    """The dtypes of a checkpoint's teacher tensors, and how many of its values bfloat16
    cannot hold (none: the teacher's weights are bfloat16-rounded) of how many."""
    sys.path.insert(0, REPO)
    from mmkd_yolo.fileio.safe_load import load_checkpoint_file
    state = load_checkpoint_file(checkpoint, map_location='cpu')['state_dict']
    teacher = [v for k, v in state.items() if k.startswith('teacher.') and
               v.is_floating_point()]
    if not teacher:
        raise StepFailed(f'{checkpoint} holds no teacher tensors')
    off = sum(int((v.float() != v.bfloat16().float()).sum()) for v in teacher)
    return {str(v.dtype) for v in teacher}, off, sum(v.numel() for v in teacher)


def step_precision(args, plan, out, data, failures) -> dict:
    """The teacher's precision paths; per run name (result, detail) for the table."""
    rows = {}
    amp = 'under --amp' if plan['amp'] else 'no --amp (needs a GPU)'
    for name, cmd in precision_commands(plan, out, data, args.yolov5n).items():
        wd = osp.join(out, f'precision_{name}')
        what = f'precision run {name}'
        try:
            took = run_logged(cmd, osp.join(wd, 'train.log'), what)
            line = teacher_line(osp.join(wd, 'train.log'))
            runtime = line.group(1)
            if name == 'auto':
                rows[name] = (runtime, line.group(0))
            elif name == 'bf16':
                dtypes, _, _ = teacher_values(osp.join(wd, 'epoch_1.pth'))
                if runtime != 'PyTorch, torch.bfloat16' or dtypes != {'torch.bfloat16'}:
                    raise StepFailed(f'{what}: teacher {runtime}, held in {dtypes} in its '
                                     'checkpoint; expected bfloat16')
                rows[name] = (f'ok, {amp}', f'{line.group(0)}; its checkpoint holds the '
                              'teacher in torch.bfloat16')
            else:
                with open(osp.join(wd, 'train.log')) as f:
                    kept = KEPT_LINE.search(f.read())
                dtypes, off, total = teacher_values(osp.join(wd, 'epoch_2.pth'))
                if (runtime != 'PyTorch, torch.float32' or not kept
                        or dtypes != {'torch.float32'} or not off):
                    raise StepFailed(
                        f'{what}: teacher {runtime}, {"a" if kept else "no"} line of the '
                        f'float32 teacher kept, its checkpoint\'s teacher {dtypes} with '
                        f'{off} of {total} values beyond bfloat16 (expected float32, most)')
                rows[name] = (f'ok, {amp}', f'{kept.group(0)}; {line.group(0)}; its next '
                              f'checkpoint\'s teacher: float32, {off} of {total} values '
                              'beyond bfloat16 (not the rounded ones)')
        except StepFailed as e:
            failures.append(str(e))
            say(f'{what}: FAILED ({str(e).splitlines()[0]})')
            rows[name] = ('FAILED', str(e).splitlines()[0])
            continue
        say(f'{what}: {rows[name][0]}, {took:.0f}s; {rows[name][1]}')
    return rows


# --- the table -------------------------------------------------------------------------------

def fmt(value, spec='.3f') -> str:
    return 'n/a' if value is None else format(value, spec)


def table(args, plan, install, tests, loop, maps, precision=None) -> str:
    cuda = plan['name'] == 'cuda'
    amp = '--amp' if plan['amp'] else 'no --amp (needs a GPU)'
    pairs = [(p, d) for p, d in zip(loop['plain'], loop['distilled']) if p and d]
    rows = [('install', install, 'bash tools/misc/install_env.sh'), ('tests', *tests)]

    def per_variant(variant, label, detail):
        res = [x for x in loop[variant] if x]
        if not res:
            rows.append((label, 'FAILED', detail))
            return None
        mean = statistics.mean(x['s_it'] for x in res)
        rounds = ', '.join(fmt(x['s_it']) if x else 'FAILED' for x in loop[variant])
        data_s = statistics.mean(x['data_s'] for x in res)
        rows.append((label, fmt(mean), f'{detail}; rounds: {rounds}; waiting for data '
                     f'{fmt(data_s)} s/it'))
        return res

    skip = plan['skip_iters']
    per_variant('plain', 's/it, plain YOLOv5-n', f'{amp}; iterations after the first {skip}')
    per_variant('distilled', 's/it, distilled n <- s',
                f'{amp}, --t-precision {plan["t_precision"]}; teacher: YOLOv5-s, random '
                'weights (the cost does not depend on them)')
    if pairs:
        ratios = [d['s_it'] / p['s_it'] for p, d in pairs]
        rows.append(('loop ratio distilled / plain', f'{statistics.mean(ratios):.2f}x',
                     f'mean of {len(ratios)} same-round pairs, range '
                     f'{min(ratios):.2f}-{max(ratios):.2f}'))
    else:
        rows.append(('loop ratio distilled / plain', 'FAILED', 'no round with both runs'))

    def peak(key):
        vals = []
        for variant in ('plain', 'distilled'):
            res = [x[key] for x in loop[variant] if x and x[key] is not None]
            vals.append(fmt(max(res), '.0f') if res else
                        ('n/a' if not cuda and key == 'cuda_peak_mib' else 'FAILED'))
        return ' / '.join(vals)

    rows.append(('peak RSS MiB, plain / distilled', peak('peak_rss_mib'),
                 'training process, data workers excluded; max over rounds'))
    rows.append(('peak CUDA MiB, plain / distilled', peak('cuda_peak_mib') if cuda else 'n/a',
                 'torch.cuda.max_memory_allocated' if cuda else 'no CUDA: CPU fallback'))
    low = plan['t_precision']
    vals = ' / '.join(f'{maps[p][0]:.4f}' if p in maps else 'FAILED' for p in ('fp32', low))
    diff = (f'{100 * (maps[low][0] - maps["fp32"][0]):+.2f} points'
            if 'fp32' in maps and low in maps else 'no difference: a run failed')
    rows.append((f'teacher mAP@.5:.95, fp32 / {low}', vals,
                 f'{diff}; the official YOLOv5n ({osp.basename(args.yolov5n)}), not the '
                 'random s teacher; network under autocast as --t-precision runs it, outputs '
                 'cast to float32 before decoding and NMS'))
    labels = {'auto': 'teacher precision auto: the choice',
              'bf16': 'bf16 teacher, distilled 1 epoch',
              'resume_fp32': 'fp32 teacher, resuming the bf16 run'}
    for name, label in labels.items():
        if precision is not None:
            rows.append((label, *precision.get(name, ('FAILED', 'not run'))))
    head = (f'GPU check, plan {plan["name"]}'
            + ('' if cuda else ' (no CUDA: CPU fallback on a tiny schedule)')
            + f': {plan["device"]}; coco128 {data_yaml(args.coco128)}, '
            f'{plan["img_size"]} px, batch {plan["batch"]}, {plan["epochs"]} epochs per run, '
            f'{plan["rounds"]} round(s) plain/distilled alternating, '
            f'{plan["workers"]} dataloader workers')
    lines = [head, '', '| check | result | detail |', '|---|---|---|']
    lines += [f'| {a} | {b} | {c} |' for a, b, c in rows]
    return '\n'.join(lines)


def say(msg: str) -> None:
    print(f'[gpu_check] {msg}', flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        plan = resolve_plan(args)
    except StepFailed as e:
        say(f'FAILED: {e}')
        return 1
    if plan['name'] == 'cpu':
        say('no CUDA (torch.cuda.is_available() is False): CPU fallback, the same steps on '
            f'a tiny schedule, {plan["img_size"]} px, teacher in {plan["t_precision"]}, '
            'no --amp; the CUDA columns read n/a' if args.plan != 'cpu' else
            'plan cpu: the CPU fallback')
    data = data_yaml(args.coco128)
    missing = [p for p in (data, args.yolov5n) if not osp.isfile(p)]
    out = osp.join(args.out, time.strftime('%Y%m%d-%H%M%S'))
    tests = args.tests or FAST_SUITE
    if args.dry_run:
        if missing:
            say('note: missing ' + ', '.join(missing) + ' (a real run stops on this)')
        say(f'plan {plan["name"]}: {plan["device"]}')
        print(f'cd {REPO}')
        print(show(pytest_command(tests)))
        for r in range(plan['rounds']):
            for distilled in (False, True):
                wd = osp.join(out, f'round{r}_{"distilled" if distilled else "plain"}')
                print(show(train_command(plan, distilled, wd, data, args.yolov5n)))
        for precision in ('fp32', plan['t_precision']):
            print(show(test_command(plan, precision, osp.join(out, f'teacher_{precision}'),
                                    data, args.yolov5n)))
        for cmd in precision_commands(plan, out, data, args.yolov5n).values():
            print(show(cmd))
        return 0
    if missing:
        say('FAILED: missing ' + ', '.join(missing) + ': give --coco128 DIR (holding '
            'data.yaml) and --yolov5n PATH (the official yolov5n.pt)')
        return 1
    say(f'plan {plan["name"]}: {plan["device"]}; logs under {out}')
    failures = []
    try:
        tests_status = step_tests(args, plan, out)
    except StepFailed as e:
        failures.append(str(e))
        tests_status = ('FAILED', str(e).splitlines()[0])
    say('tests: ' + ', '.join(tests_status))
    loop = step_loop(args, plan, out, data, failures)
    maps = step_teacher(args, plan, out, data, failures)
    precision = step_precision(args, plan, out, data, failures)
    report = table(args, plan, args.install_status, tests_status, loop, maps, precision)
    with open(osp.join(out, 'report.md'), 'w') as f:
        f.write(report + '\n')
    print('\n' + report + '\n', flush=True)
    if failures:
        say(f'FAILED: {len(failures)} step(s) failed:')
        for failure in failures:
            print('  - ' + failure.replace('\n', '\n    '), file=sys.stderr)
        return 1
    say(f'all steps passed; report: {osp.join(out, "report.md")}')
    return 0


# --- wrap: run a tool in this process and write its peaks ------------------------------------

def autocast_network(precision: str) -> None:
    """Run every YOLO detector's backbone, neck and head under the teacher's autocast for
    ``precision`` (resolved per call, on the input's device), outputs back in float32."""
    import torch
    from mmyolo.models.dense_heads.yolov5_head import YOLOv5HeadModule
    from mmyolo.models.detectors import YOLODetector

    from mmkd_yolo.models.teacher_precision import (choose_teacher_runtime, teacher_autocast,
                                                    to_float32)

    def under_autocast(fn):
        @functools.wraps(fn)
        def forward(self, x, *a, **kw):
            device = (x if torch.is_tensor(x) else x[0]).device
            with teacher_autocast(choose_teacher_runtime(precision, device)[0], device):
                return to_float32(fn(self, x, *a, **kw))
        return forward

    YOLODetector.extract_feat = under_autocast(YOLODetector.extract_feat)
    YOLOv5HeadModule.forward = under_autocast(YOLOv5HeadModule.forward)


def wrap(argv) -> None:
    """``wrap --out JSON [--net-precision P] -- TOOL ARGS...``: run TOOL as __main__ here;
    write peak RSS, CUDA peak and the metrics of ``Runner.test`` to JSON, also on failure."""
    import resource
    import runpy

    parser = argparse.ArgumentParser(prog=f'{HERE} wrap')
    parser.add_argument('--out', required=True)
    parser.add_argument('--net-precision', choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('tool', nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    tool = args.tool[1:] if args.tool[:1] == ['--'] else args.tool
    import mmkd_yolo  # noqa: F401  (compat measures first, as tools/*.py import it)
    import torch
    from mmengine.runner import Runner
    metrics = {}
    run_test = Runner.test

    def test(self):
        result = run_test(self)
        metrics.update({k: float(v) for k, v in result.items()})
        return result

    Runner.test = test
    if args.net_precision:
        autocast_network(args.net_precision)
    sys.argv = tool
    try:
        runpy.run_path(tool[0], run_name='__main__')
    finally:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        peaks = dict(
            peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            cuda_peak_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            metrics=metrics)
        with open(args.out, 'w') as f:
            json.dump(peaks, f)


if __name__ == '__main__':
    if sys.argv[1:2] == ['wrap']:
        wrap(sys.argv[2:])
    else:
        sys.exit(main())
