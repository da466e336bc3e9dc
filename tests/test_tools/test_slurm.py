"""tools/slurm_train.sh and tools/slurm_test.sh: the srun command they build, checked
against a fake ``srun`` that records its arguments and environment."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from ..conftest import REPO

TOOLS = osp.join(REPO, 'tools')
FAKE_SRUN = """#!/bin/sh
printf '%s\\n' "$@" > "$SRUN_RECORD"
printf '%s\\n' "$PYTHONPATH" > "$SRUN_RECORD.pythonpath"
"""
SRUN_OPTIONS = ['-p', 'gpu_part', '--job-name=kd', '--gres=gpu:2', '--ntasks=4',
                '--ntasks-per-node=2', '--cpus-per-task=3', '--kill-on-bad-exit=1',
                '--quotatype=auto', '--exclusive']


@pytest.fixture
def fake_srun(tmp_path):
    """Run a slurm script from an unrelated folder with the fake srun first on PATH;
    returns (completed process, srun's argv, srun's PYTHONPATH)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    record = tmp_path / 'srun_argv.txt'
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()

    def run(script, *args):
        env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                   SRUN_RECORD=str(record), GPUS='4', GPUS_PER_NODE='2', CPUS_PER_TASK='3',
                   SRUN_ARGS='--quotatype=auto --exclusive', PYTHON=sys.executable,
                   PYTHONPATH='/some/where')
        proc = subprocess.run(['bash', osp.join(TOOLS, script), *args], cwd=elsewhere,
                              env=env, capture_output=True, text=True, timeout=30)
        if not record.exists():
            return proc, None, None
        return (proc, record.read_text().splitlines(),
                (tmp_path / 'srun_argv.txt.pythonpath').read_text().strip())

    return run


def test_slurm_train_command(fake_srun):
    proc, argv, pythonpath = fake_srun(
        'slurm_train.sh', 'gpu_part', 'kd', 'configs/kd.py', 'work_dirs/kd dir',
        '--t-weights', 'yolov5s.pt', '--cfg-options', 'a=1', 'b=x y')
    assert proc.returncode == 0, proc.stderr
    assert argv == SRUN_OPTIONS + [
        sys.executable, '-u', osp.join(TOOLS, 'train.py'), 'configs/kd.py',
        '--work-dir=work_dirs/kd dir', '--launcher', 'slurm',
        '--t-weights', 'yolov5s.pt', '--cfg-options', 'a=1', 'b=x y']
    assert pythonpath == f'{REPO}:/some/where'


def test_slurm_test_command(fake_srun):
    proc, argv, pythonpath = fake_srun(
        'slurm_test.sh', 'gpu_part', 'kd', 'configs/kd.py', 'student.pth',
        '--data', 'my_data/data.yaml', '--cfg-options', 'a=1')
    assert proc.returncode == 0, proc.stderr
    assert argv == SRUN_OPTIONS + [
        sys.executable, '-u', osp.join(TOOLS, 'test.py'), 'configs/kd.py', 'student.pth',
        '--launcher', 'slurm', '--data', 'my_data/data.yaml', '--cfg-options', 'a=1']
    assert pythonpath == f'{REPO}:/some/where'


@pytest.mark.parametrize('script,last', [('slurm_train.sh', 'WORK_DIR'),
                                         ('slurm_test.sh', 'CHECKPOINT')])
def test_missing_arguments_print_usage(fake_srun, script, last):
    proc, argv, _ = fake_srun(script, 'gpu_part', 'kd', 'configs/kd.py')
    assert proc.returncode != 0 and argv is None  # srun never started
    assert proc.stderr.startswith('usage:') and f'PARTITION JOB_NAME CONFIG {last}' in \
        proc.stderr
