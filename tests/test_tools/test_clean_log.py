"""A clean log: a short training, test, ONNX export and inference as a user runs them
print no warning that is not about the run."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from mmkd_yolo.apis.loaders import has_accelerator

from ..conftest import KD_OUT_N2N, REPO, quick_options
from .test_train import cli_options

pytestmark = pytest.mark.slow  # subprocesses and a training run

#: Python warnings (``...: UserWarning: ...``) and mmengine's ``- WARNING -`` records.
WARNING_LINE = re.compile(r'Warning:|- WARNING -')

#: Warnings about the run itself, which must still show: mmkd_yolo's own.
ALLOWED = (r'- WARNING - warm-up of \d+ iterations .* would take \d+% of this', )


def _one_core():
    """Run on one core (Linux), so that the loaders ask for more than there is."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def run_as_user(args, cwd):
    """A tool's combined output, run as from a shell: no warning options of the test's."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    proc = subprocess.run([sys.executable, '-u'] + args, cwd=cwd, capture_output=True,
                          text=True, timeout=900, env=env, preexec_fn=_one_core)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def unexpected_warnings(out):
    return [line for line in out.splitlines()
            if WARNING_LINE.search(line) and not any(re.search(a, line) for a in ALLOWED)]


def test_train_test_export_infer_print_no_stack_noise(shapes_dir, tmp_path):
    work_dir = tmp_path / 'work'
    opts = quick_options(work_dir, epochs=1)
    # as mmyolo's configs: more workers than cores, pinned memory
    opts.update({'train_dataloader.num_workers': 2, 'train_dataloader.pin_memory': True})
    out = run_as_user([osp.join(REPO, 'tools', 'train.py'), KD_OUT_N2N, '--cfg-options'] +
                      cli_options(opts), cwd=shapes_dir)
    assert unexpected_warnings(out) == []
    assert re.search(ALLOWED[0], out)  # a 2-iteration run warms up for less: still said
    assert 'train_dataloader: 2 workers asked, 1 CPU core(s) per process here' in out
    assert ('train_dataloader: pin_memory off' in out) != has_accelerator()
    ckpt = str(work_dir / 'epoch_1.pth')

    out = run_as_user([osp.join(REPO, 'tools', 'test.py'), KD_OUT_N2N, ckpt, '--work-dir',
                       str(tmp_path / 'test')], cwd=shapes_dir)
    assert unexpected_warnings(out) == []
    assert 'coco/bbox_mAP' in out

    onnx_file = str(tmp_path / 'student.onnx')
    out = run_as_user([osp.join(REPO, 'tools', 'deployment', 'export_onnx.py'), KD_OUT_N2N,
                       ckpt, '--out', onnx_file, '--img-size', '64', '--nms'], cwd=shapes_dir)
    assert unexpected_warnings(out) == []

    out = run_as_user([osp.join(REPO, 'tools', 'infer.py'), onnx_file,
                       str(shapes_dir / 'data' / 'shapes' / 'val'), '--out',
                       str(tmp_path / 'detections')], cwd=shapes_dir)
    assert unexpected_warnings(out) == []
    assert osp.isfile(tmp_path / 'detections' / 'detections.json')
