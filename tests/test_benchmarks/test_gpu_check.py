"""benchmarks/gpu_check.sh (and its driver gpu_check.py): the shell syntax, the command plans
(the CUDA one forced with ``--plan cuda``, so it is checked without a GPU), the reading of the
runs' logs, and one end-to-end run of the CPU fallback on generated data."""
import json
import os
import os.path as osp
import re
import shlex
import subprocess
import sys

import pytest
import torch

from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.registry import MODELS

from ..conftest import REPO
from ..helpers.scripts import load_script
from ..helpers.ultralytics_pt import write_ultralytics_pt
from ..test_datasets.test_yolo_data import make_yolo_tree

SCRIPT = osp.join(REPO, 'benchmarks', 'gpu_check.sh')
# the interpreter running the tests, as the script's environment
VENV = osp.dirname(osp.dirname(sys.executable))


def load_driver():
    return load_script(osp.join(REPO, 'benchmarks', 'gpu_check.py'), 'gpu_check')


def run_script(*args, timeout=60):
    return subprocess.run(['bash', SCRIPT, *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, VENV=VENV))


def tool_commands(stdout, tool):
    """The printed commands that run ``tool`` (tools/train.py or tools/test.py), split."""
    return [shlex.split(line) for line in stdout.splitlines()
            if line.startswith(sys.executable) and f' -- {tool} ' in line]


def cfg_options(cmd):
    return dict(o.split('=', 1) for o in cmd[cmd.index('--cfg-options') + 1:])


def test_shell_syntax():
    proc = subprocess.run(['bash', '-n', SCRIPT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def loop_and_precision_runs(stdout):
    """The printed training commands: the loop's, and the precision runs' (the teacher
    given by --t-weights)."""
    train = tool_commands(stdout, 'tools/train.py')
    return ([c for c in train if '--t-weights' not in c],
            [c for c in train if '--t-weights' in c])


def test_dry_run_cuda_plan():
    """The CUDA plan on any machine: install, the fast suite, plain and distilled runs
    alternating (--amp both, fp16 teacher), 640 px, batch 16, a few hundred iterations,
    the official YOLOv5n evaluated in fp32 and fp16, and the precision runs."""
    proc = run_script('--dry-run', '--plan', 'cuda', '--coco128', '/data/coco128',
                      '--yolov5n', '/w/yolov5n.pt')
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert 'bash tools/misc/install_env.sh' in out
    assert "-m pytest tests -m 'not slow'" in out
    train, precision = loop_and_precision_runs(out)
    assert len(train) == 4  # two rounds
    kinds = ['kd-out_yolov5_s-to-n' in ' '.join(c) for c in train]
    assert kinds == [False, True, False, True]
    for cmd, distilled in zip(train, kinds):
        opts = cfg_options(cmd)
        assert '--amp' in cmd
        assert cmd[cmd.index('--img-size') + 1] == '640'
        assert cmd[cmd.index('--data') + 1] == '/data/coco128/data.yaml'
        assert cmd[cmd.index('--weights') + 1] == '/w/yolov5n.pt'
        assert opts['train_dataloader.batch_size'] == '16'
        assert 200 <= int(opts['train_cfg.max_epochs']) * 128 // 16 <= 600
        assert int(opts['train_cfg.val_interval']) > int(opts['train_cfg.max_epochs'])
        assert int(opts['train_cfg.val_begin']) > int(opts['train_cfg.max_epochs'])
        assert opts['log_processor.window_size'] == '1'
        if distilled:
            assert cmd[cmd.index('--t-precision') + 1] == 'fp16'
            assert opts['custom_hooks.1.num_last_epochs'] == '0'
        else:
            assert '--t-precision' not in cmd and 'yolov5_n-v61' in ' '.join(cmd)
    test = tool_commands(out, 'tools/test.py')
    assert [c[c.index('--net-precision') + 1] for c in test] == ['fp32', 'fp16']
    for cmd in test:
        assert '/w/yolov5n.pt' in cmd and cmd[cmd.index('--img-size') + 1] == '640'
    check_precision_runs(precision, amp=True)


def check_precision_runs(precision, amp):
    """auto, bf16, and the bf16 run resumed with an fp32 teacher: one epoch each, distilled
    from the official YOLOv5n (a teacher with float32 weights in a file), --amp on CUDA."""
    assert [c[c.index('--t-precision') + 1] for c in precision] == ['auto', 'bf16', 'fp32']
    work_dirs = [c[c.index('--work-dir') + 1] for c in precision]
    for cmd in precision:
        opts = cfg_options(cmd)
        assert ('--amp' in cmd) == amp and 'kd-out_yolov5_s-to-n' in ' '.join(cmd)
        assert cmd[cmd.index('--t-weights') + 1] == cmd[cmd.index('--weights') + 1]
        assert 'yolov5_n-v61' in cmd[cmd.index('--t-cfg') + 1]
        assert int(opts['default_hooks.checkpoint.interval']) == int(
            opts['train_cfg.max_epochs'])
    assert [cfg_options(c)['train_cfg.max_epochs'] for c in precision] == ['1', '1', '2']
    assert ['--resume' in c for c in precision] == [False, False, True]
    resume = precision[2]
    assert resume[resume.index('--resume') + 1] == osp.join(work_dirs[1], 'epoch_1.pth')


def test_dry_run_cpu_plan_and_overrides():
    proc = run_script('--dry-run', '--plan', 'cpu', '--skip-install', '--coco128',
                      '/d/my.yaml', '--yolov5n', '/w/n.pt', '--rounds', '2', '--tests',
                      'tests/test_layers.py')
    assert proc.returncode == 0, proc.stderr
    assert 'install_env.sh' not in proc.stdout
    assert '-m pytest tests/test_layers.py -q' in proc.stdout
    train, precision = loop_and_precision_runs(proc.stdout)
    assert len(train) == 4
    for cmd in train:
        assert '--amp' not in cmd  # mmengine's AmpOptimWrapper needs a GPU
        assert 160 <= int(cmd[cmd.index('--img-size') + 1]) <= 320
        assert cmd[cmd.index('--data') + 1] == '/d/my.yaml'
        if '--t-precision' in cmd:
            assert cmd[cmd.index('--t-precision') + 1] == 'bf16'
    assert sum('--t-precision' in c for c in train) == 2
    test = tool_commands(proc.stdout, 'tools/test.py')
    assert [c[c.index('--net-precision') + 1] for c in test] == ['fp32', 'bf16']
    check_precision_runs(precision, amp=False)


@pytest.mark.slow  # the gpu_check dry run in a subprocess
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message of a CPU machine')
def test_dry_run_says_no_cuda():
    proc = run_script('--dry-run', '--coco128', '/d', '--yolov5n', '/w/n.pt')
    assert proc.returncode == 0, proc.stderr
    assert 'no CUDA (torch.cuda.is_available() is False): CPU fallback' in proc.stdout
    train = tool_commands(proc.stdout, 'tools/train.py')
    assert train and not any('--amp' in c for c in train)
    assert '--t-precision bf16' in proc.stdout


def test_missing_inputs_stop_before_install(tmp_path):
    proc = run_script('--coco128', str(tmp_path / 'nowhere'), '--yolov5n', str(tmp_path))
    assert proc.returncode == 1
    assert f'FAILED: no {tmp_path}/nowhere/data.yaml' in proc.stderr
    assert 'install' not in proc.stdout
    proc = run_script('--coco128', str(tmp_path), '--yolov5n', str(tmp_path), '--epoch', 'x')
    assert proc.returncode == 1
    assert "argument --epochs: invalid int value: 'x'" in proc.stderr
    assert 'FAILED: bad options' in proc.stderr and 'install' not in proc.stdout


def write_scalars(work_dir, records):
    vis = work_dir / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in records))


def test_loop_times_skips_the_first_iterations(tmp_path):
    gpu_check = load_driver()
    records = [dict(loss=1.0, time=t, data_time=d, step=i + 1, **{'distill.loss_out_obj': 0.1})
               for i, (t, d) in enumerate([(9.0, 3.0), (5.0, 1.0), (1.0, 0.1), (2.0, 0.3)])]
    records.insert(2, {'coco/bbox_mAP': 0.1, 'step': 2})  # a val record: not an iteration
    write_scalars(tmp_path, records)
    res = gpu_check.loop_times(str(tmp_path), skip_iters=2, distilled=True)
    assert res == dict(s_it=pytest.approx(1.5), data_s=pytest.approx(0.2), iters=2)
    res = gpu_check.loop_times(str(tmp_path), skip_iters=0, distilled=True)
    assert res['s_it'] == pytest.approx(17 / 4) and res['iters'] == 4
    with pytest.raises(gpu_check.StepFailed, match='none after the first 4'):
        gpu_check.loop_times(str(tmp_path), skip_iters=4, distilled=False)


def test_loop_times_refuses_a_run_that_stopped_distilling(tmp_path):
    gpu_check = load_driver()
    write_scalars(tmp_path, [dict(loss=1.0, time=1.0, data_time=0.1, step=i + 1)
                             for i in range(3)])
    assert gpu_check.loop_times(str(tmp_path), 1, distilled=False)['iters'] == 2
    with pytest.raises(gpu_check.StepFailed, match='without distillation losses'):
        gpu_check.loop_times(str(tmp_path), 1, distilled=True)


def test_table_ratio_and_failures():
    gpu_check = load_driver()
    args = gpu_check.parse_args(['--coco128', '/d', '--yolov5n', '/w/n.pt', '--plan', 'cpu'])
    plan = gpu_check.resolve_plan(args)

    def res(s_it, rss):
        return dict(s_it=s_it, data_s=0.01, iters=5, peak_rss_mib=rss, cuda_peak_mib=None)

    loop = {'plain': [res(1.0, 800), res(2.0, 810)], 'distilled': [res(1.5, 900), None]}
    text = gpu_check.table(args, plan, 'ok', ('ok: 3 passed', 'pytest x'), loop,
                           {'fp32': (0.30, 0.5), 'bf16': (0.28, 0.5)})
    rows = {line.split(' | ')[0][2:]: line.split(' | ')[1:] for line in text.splitlines()
            if line.startswith('| ')}
    assert rows['loop ratio distilled / plain'][0] == '1.50x'  # the pair of round 1 only
    assert rows['s/it, plain YOLOv5-n'][0] == '1.500'
    assert 'rounds: 1.500, FAILED' in rows['s/it, distilled n <- s'][1]
    assert rows['peak RSS MiB, plain / distilled'][0] == '810 / 900'
    assert rows['peak CUDA MiB, plain / distilled'][0] == 'n/a'
    assert rows['teacher mAP@.5:.95, fp32 / bf16'][0] == '0.3000 / 0.2800'
    assert rows['teacher mAP@.5:.95, fp32 / bf16'][1].startswith('-2.00 points')
    assert 'teacher precision auto' not in text  # no precision step given
    text = gpu_check.table(args, plan, 'ok', ('FAILED', 'x'), {'plain': [None],
                           'distilled': [None]}, {'fp32': (0.3, 0.5)},
                           {'auto': ('PyTorch, torch.bfloat16', 'the line')})
    assert '| loop ratio distilled / plain | FAILED |' in text
    assert '| teacher mAP@.5:.95, fp32 / bf16 | 0.3000 / FAILED |' in text
    assert '| teacher precision auto: the choice | PyTorch, torch.bfloat16 | the line |' in text
    assert '| fp32 teacher, resuming the bf16 run | FAILED | not run |' in text


def test_log_lines_the_precision_step_reads():
    """The teacher line (with and without an enclosing --amp autocast, a reason holding
    parentheses) and the kept-float32 line, as YOLOv5Distill logs them."""
    gpu_check = load_driver()
    log = ("2026/01/01 00:00:00 - mmengine - INFO - YOLOv5Distill: teacher forward in "
           "PyTorch, torch.float16 on cuda, its own autocast in place of the training step's "
           "torch.float16 one (teacher_precision='auto': Tesla T4 (compute capability 7.5) "
           "has no native bfloat16 (emulated only, slower): float16, as --amp uses)\n"
           "2026/01/01 00:00:01 - mmengine - INFO - Epoch(train) [1][1/8] loss: 1.0\n")
    found = gpu_check.TEACHER_LINE.search(log)
    assert found.group(1, 2, 3) == ('PyTorch, torch.float16', 'cuda', 'auto')
    assert found.group(4).startswith('Tesla T4 (compute capability 7.5) has no native')
    found = gpu_check.TEACHER_LINE.search(
        "x - YOLOv5Distill: teacher forward in onnxruntime, float32 on cpu "
        "(teacher_precision='ort': as set)")
    assert found.group(1, 2, 3, 4) == ('onnxruntime, float32', 'cpu', 'ort', 'as set')
    assert gpu_check.KEPT_LINE.search(
        'x - INFO - the checkpoint holds the teacher in torch.bfloat16, as it ran: kept the '
        'float32 values of its 62 tensors from /w/yolov5n.pt').group(1) == 'torch.bfloat16'


@pytest.mark.slow  # subprocesses
def test_failing_tests_step_names_its_log(tmp_path):
    gpu_check = load_driver()
    args = gpu_check.parse_args(['--coco128', '/d', '--yolov5n', '/w/n.pt', '--tests',
                                 'tests/test_benchmarks/no_such_file.py'])
    with pytest.raises(gpu_check.StepFailed, match='exited with status 4') as err:
        gpu_check.step_tests(args, None, str(tmp_path))
    assert str(tmp_path / 'pytest.log') in str(err.value)
    assert 'no_such_file.py' in str(err.value)  # pytest's own message, from the log's tail


@pytest.fixture
def tiny_coco128(tmp_path):
    """8 generated images with labels (2 classes) and a synthetic Ultralytics YOLOv5n."""
    labels = {f'img{i}': f'{i % 2} 0.5 0.5 0.4 0.5\n1 0.25 0.3 0.2 0.2\n' for i in range(8)}
    data = make_yolo_tree(tmp_path / 'coco128', labels, names=('cat', 'dog'))
    cfg = load_detector_cfg('mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py')
    cfg.bbox_head.head_module.num_classes = 2
    torch.manual_seed(0)
    weights = write_ultralytics_pt(tmp_path / 'yolov5n.pt', MODELS.build(cfg), 2)
    return osp.dirname(data), weights


@pytest.mark.slow  # trains and evaluates in subprocesses (minutes on 2 cores)
def test_end_to_end_cpu_fallback(tiny_coco128, tmp_path):
    """The whole script (install skipped) on a tiny schedule: every step passes and the
    table holds numbers. On a machine with CUDA the same call takes the CUDA plan."""
    coco128, weights = tiny_coco128
    proc = run_script('--skip-install', '--coco128', coco128, '--yolov5n', weights,
                      '--tests', "tests/test_benchmarks/test_gpu_check.py -m 'not slow'",
                      '--img-size', '160', '--batch', '4', '--epochs', '2', '--skip-iters',
                      '1', '--workers', '0', '--out', str(tmp_path / 'out'), timeout=1200)
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    out = proc.stdout
    cuda = torch.cuda.is_available()
    if not cuda:
        assert 'no CUDA (torch.cuda.is_available() is False): CPU fallback' in out
    table = out[out.index('| check | result | detail |'):]
    cells = {line.split(' | ')[0][2:]: line.split(' | ')[1] for line in table.splitlines()
             if line.startswith('| ')}
    assert cells['install'] == 'skipped (--skip-install)'
    assert re.fullmatch(r'ok: \d+ passed.*', cells['tests'])
    ratio = float(cells['loop ratio distilled / plain'].rstrip('x'))
    assert ratio > 0
    for name in ('s/it, plain YOLOv5-n', 's/it, distilled n <- s'):
        assert float(cells[name]) > 0
    rss = [float(x) for x in cells['peak RSS MiB, plain / distilled'].split(' / ')]
    assert all(x > 100 for x in rss)
    cuda_cell = cells['peak CUDA MiB, plain / distilled']
    assert cuda_cell.count(' / ') == 1 if cuda else cuda_cell == 'n/a'
    low = 'fp16' if cuda else 'bf16'
    maps = [float(x) for x in cells[f'teacher mAP@.5:.95, fp32 / {low}'].split(' / ')]
    assert all(0 <= m <= 1 for m in maps)
    assert cells['teacher precision auto: the choice'] in (
        'PyTorch, torch.bfloat16', 'PyTorch, torch.float16', 'PyTorch, torch.float32',
        'onnxruntime, float32')
    assert cells['bf16 teacher, distilled 1 epoch'].startswith('ok')
    assert cells['fp32 teacher, resuming the bf16 run'].startswith('ok')
    details = {line.split(' | ')[0][2:]: line.split(' | ')[2] for line in table.splitlines()
               if line.startswith('| ')}
    resumed = details['fp32 teacher, resuming the bf16 run']
    assert 'kept the float32 values of its' in resumed and weights in resumed
    beyond = re.search(r'float32, (\d+) of \d+ values beyond bfloat16', resumed)
    assert int(beyond.group(1)) > 1000
    report = [osp.join(d, 'report.md') for d, _, files in os.walk(tmp_path / 'out')
              if 'report.md' in files]
    assert len(report) == 1 and open(report[0]).read().strip() in out
