"""Nothing lost: kill a run while training and while saving, then resume."""
import copy
import glob
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmkd_yolo.apis import prepare_train_cfg
from mmkd_yolo.fileio import (find_resume_checkpoint, is_complete_checkpoint,
                              load_checkpoint_file)
from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.registry import MODELS

from ..conftest import KD_CWD_S2N, REPO, TEACHER_S, quick_options

pytestmark = pytest.mark.slow  # subprocesses and training runs


def wait_for(predicate, timeout, what, proc=None, log=None):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            tail = open(log).read()[-3000:] if log else ''
            raise AssertionError(f'process ended (rc {proc.returncode}) before {what}\n{tail}')
        time.sleep(0.01)
    raise AssertionError(f'timed out waiting for {what}')


class _SnapshotHook(Hook):
    """Records the resumed state just before training continues."""

    def before_train(self, runner):
        model = runner.model
        self.iter = runner.iter
        self.student = {k: v.clone() for k, v in model.student.state_dict().items()}
        self.connectors = {k: v.clone() for k, v in model.distiller.connectors.state_dict().items()}
        self.teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
        self.optim = copy.deepcopy(runner.optim_wrapper.optimizer.state_dict())
        ema_hook, = [h for h in runner.hooks if type(h).__name__ == 'StudentEMAHook']
        self.ema = {k: v.clone() for k, v in ema_hook.ema_model.module.state_dict().items()}


def test_kill_during_training_and_saving_then_resume(shapes_dir, tmp_path, monkeypatch):
    work_dir = tmp_path / 'work'
    teacher_path = tmp_path / 'teacher.pth'
    monkeypatch.chdir(shapes_dir)
    torch.save({'state_dict': MODELS.build(load_detector_cfg(TEACHER_S)).state_dict()},
               teacher_path)

    opts = quick_options(work_dir, epochs=4)
    opts.update({'default_hooks.checkpoint.backend_args.backend': 'slow_atomic_local',
                 'custom_imports.imports': '[mmkd_yolo,tests.helpers.slow_backend]'})
    env = dict(os.environ, PYTHONPATH=REPO)
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), KD_CWD_S2N, '--t-weights',
           str(teacher_path), '--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]
    log = open(tmp_path / 'train.log', 'w')
    proc = subprocess.Popen(cmd, cwd=shapes_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: osp.isfile(work_dir / 'epoch_1.pth'), 300, 'epoch_1.pth', proc,
                 tmp_path / 'train.log')
        # kill while epoch 2's checkpoint is being written
        wait_for(lambda: glob.glob(str(work_dir / 'epoch_2.pth.tmp.*')), 300,
                 'epoch 2 being saved', proc, tmp_path / 'train.log')
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert not osp.exists(work_dir / 'epoch_2.pth')  # no partial file under the real name
    assert is_complete_checkpoint(str(work_dir / 'epoch_1.pth'))

    # a truncated newer checkpoint, as a non-atomic writer would leave it, is skipped too
    with open(work_dir / 'epoch_1.pth', 'rb') as f:
        (work_dir / 'epoch_3.pth').write_bytes(f.read()[:5000])
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_3.pth'))
    stale = glob.glob(str(work_dir / 'epoch_2.pth.tmp.*'))
    assert stale  # the killed writer's temporary file
    assert find_resume_checkpoint(str(work_dir)) == str(work_dir / 'epoch_1.pth')
    assert not any(osp.exists(p) for p in stale)  # cleaned when resuming

    cfg = prepare_train_cfg(KD_CWD_S2N, t_weights=str(teacher_path), resume='auto',
                            cfg_options=quick_options(work_dir, epochs=2))
    assert cfg.load_from == str(work_dir / 'epoch_1.pth')
    runner = Runner.from_cfg(cfg)
    snap = _SnapshotHook()
    runner.register_hook(snap, priority='LOWEST')
    runner.train()

    saved = load_checkpoint_file(str(work_dir / 'epoch_1.pth'))
    # StudentEMAHook: the averaged student under state_dict, the raw one in ema_state_dict
    # (as mmengine's EMAHook); teacher and connectors are not averaged
    ema = {k: v for k, v in saved['state_dict'].items() if k.startswith('architecture.')}
    raw = dict(saved['state_dict'])
    raw.update({k[len('module.'):]: v for k, v in saved['ema_state_dict'].items()
                if k.startswith('module.')})
    assert all(k.startswith('module.architecture.') or k == 'steps'
               for k in saved['ema_state_dict'])
    assert snap.iter == saved['meta']['iter'] == 2
    for key, value in snap.ema.items():
        assert torch.equal(value, ema[f'architecture.{key}']), key
    for key, value in snap.student.items():
        assert torch.equal(value, raw[f'architecture.{key}']), key
    for key, value in snap.connectors.items():
        assert torch.equal(value, raw[f'distiller.connectors.{key}']), key
    for key, value in snap.teacher.items():
        # the checkpoint holds the teacher as it ran (bfloat16 on CPUs with native bf16);
        # resuming keeps the float32 weights of teacher_ckpt it was rounded from
        # (test_teacher_loading.py): equal to the saved ones within bfloat16's rounding
        held = raw[f'teacher.{key}']
        assert value.dtype == torch.float32 or not value.is_floating_point(), key
        assert torch.allclose(value.float(), held.float(), rtol=2 ** -7, atol=1e-30), key
        if held.dtype == torch.float32:
            assert torch.equal(value, held), key
    state, saved_state = snap.optim['state'], saved['optimizer']['state']
    assert set(state) == set(saved_state) and len(state) > 0
    for key in saved_state:
        assert torch.equal(state[key]['momentum_buffer'], saved_state[key]['momentum_buffer'])
    assert runner.iter == 4


def _children(pid):
    out = subprocess.run(['ps', '-o', 'pid=', '--ppid', str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def test_dist_worker_killed_job_exits_then_resumes(shapes_dir, tmp_path):
    work_dir = tmp_path / 'work'
    env = dict(os.environ, PYTHONPATH=REPO, PYTHON=sys.executable, PORT='29544',
               OMP_NUM_THREADS='1')
    opts = [f'{k}={v}' for k, v in quick_options(work_dir, epochs=6, batch=2).items()]
    cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), KD_CWD_S2N, '2', '--cfg-options']
    proc = subprocess.Popen(cmd + opts, cwd=shapes_dir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: osp.isfile(work_dir / 'epoch_1.pth'), 300, 'epoch_1.pth', proc)
        workers = _children(proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[1], signal.SIGKILL)
        start = time.time()
        rc = proc.wait(timeout=120)  # the whole job ends, no hang
        assert rc != 0
        assert time.time() - start < 120
    finally:
        if proc.poll() is None:
            proc.kill()
    done = max(int(osp.basename(p)[6:-4]) for p in glob.glob(str(work_dir / 'epoch_*.pth'))
               if is_complete_checkpoint(p))
    opts = [f'{k}={v}' for k, v in quick_options(work_dir, epochs=done + 1, batch=2).items()]
    out = subprocess.run(cmd[:4] + ['--resume', '--cfg-options'] + opts, cwd=shapes_dir,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f'resuming from {work_dir}/epoch_{done}.pth' in out.stdout + out.stderr
    assert osp.isfile(work_dir / f'epoch_{done + 1}.pth')
