"""The dry run behind tools/misc/check_config.py, and the tool itself."""
import os.path as osp
import subprocess
import sys

import pytest

from mmkd_yolo.apis import dry_run, prepare_train_cfg

from ..conftest import CONFIGS, KD_CWD_S2N, KD_OUT_S2N, REPO, STUDENT_N

COCO_S2N = osp.join(CONFIGS, 'distill', 'yolov5',
                    'kd-out_yolov5_s-to-n-v61_syncbn_fast_8xb16-300e_coco.py')


def test_dry_run_describes_the_loss_batch():
    cfg = prepare_train_cfg(KD_CWD_S2N)
    lines = dry_run(cfg, img_size=64, batch_size=2)
    text = '\n'.join(lines)
    records = {line.split(':')[0]: line.rsplit('-> ', 1)[1] for line in lines
               if line.startswith('recorder ')}
    # the records of the loss batch (2 images), teacher and student alike
    assert records['recorder student.neck0'] == '2x64x8x8'
    assert records['recorder teacher.neck0'] == '2x128x8x8'
    assert records['recorder teacher.neck2'] == '2x512x2x2'
    assert 'connector neck0_s: 64 -> 128 channels' in text
    assert 'teacher gradients: 0 of' in text
    # the shipped CPU-scale schedule: 40 epochs, the last 5 on the task loss alone
    assert 'distilling epochs 1-35 of 40; the last 5 train on the task loss alone' in text
    assert 'teacher weights: none (a random teacher!)' in text
    assert 'student weights: random initialisation' in text
    for name in ('distill.loss_out_box', 'distill.loss_cwd1', 'student.loss_cls'):
        assert f'loss {name}: ' in text


@pytest.mark.slow
def test_check_config_tool(tmp_path):
    tool = osp.join(REPO, 'tools', 'misc', 'check_config.py')
    out = subprocess.run([sys.executable, tool, KD_OUT_S2N, '--d-feature', '--img-size', '64'],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'recorder teacher.neck1' in out.stdout and 'loss distill.loss_cwd0' in out.stdout
    # a 10-epoch fine-tune of a COCO config (20 of 300 epochs at the end) still distils
    out = subprocess.run([sys.executable, tool, COCO_S2N, '--img-size', '64',
                          '--cfg-options', 'train_cfg.max_epochs=10'],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'distilling epochs 1-9 of 10; the last 1 train' in out.stdout
    bad = subprocess.run([sys.executable, tool, STUDENT_N], capture_output=True, text=True,
                         cwd=tmp_path)
    assert bad.returncode != 0
    assert 'is not a distillation config' in bad.stderr and 'Traceback' not in bad.stderr
