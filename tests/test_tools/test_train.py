"""End to end: tools/train.py, tools/test.py and tools/dist_train.sh on generated data."""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.runner import Runner

from mmkd_yolo.apis import prepare_train_cfg
from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.registry import MODELS

from ..conftest import KD_CWD_S2N, KD_OUT_S2N, REPO, STUDENT_N, TEACHER_S, quick_options

pytestmark = pytest.mark.slow  # subprocesses and training runs


def cli_options(opts):
    return [f'{k}={v}' for k, v in opts.items()]


def run_tool(args, cwd, timeout=600, env=None):
    proc = subprocess.run([sys.executable] + args, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def scalars(work_dir):
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert files, f'no scalars.json under {work_dir}'
    with open(files[-1]) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize('config,switch,has_feature,runtime', [
    (KD_CWD_S2N, '--d-output', False, 'auto'),
    # the teacher in onnxruntime, its neck features recorded too
    (KD_OUT_S2N, '--d-feature', True, 'ort'),
])
def test_train_cli_switches_then_validate(shapes_dir, tmp_path, config, switch, has_feature,
                                          runtime):
    work_dir = tmp_path / 'work'
    # the configs as shipped: a 2-epoch run distils throughout (the stop scales with it)
    opts = quick_options(work_dir)
    out = run_tool([osp.join(REPO, 'tools', 'train.py'), config, switch, '--t-precision',
                    runtime, '--cfg-options'] + cli_options(opts), cwd=shapes_dir)
    assert ("teacher forward in onnxruntime, float32 on cpu (teacher_precision='ort'"
            in out) == (runtime == 'ort')
    rows = scalars(str(work_dir))
    train_rows = [r for r in rows if 'student.loss_cls' in r]
    assert len(train_rows) == 4  # 2 epochs x 2 iterations
    keys = set(train_rows[-1])
    assert {'student.loss_bbox', 'student.loss_obj', 'distill.loss_out_box',
            'distill.loss_out_obj', 'distill.loss_out_cls'} <= keys
    assert ('distill.loss_cwd0' in keys) == has_feature
    val = [r for r in rows if 'coco/bbox_mAP' in r]
    assert len(val) == 1 and 0.0 <= val[0]['coco/bbox_mAP'] <= 1.0
    assert 'Transferred' not in out  # no teacher weights given: random teacher
    assert 'distilling epochs 1-2 of 2' in out
    assert osp.isfile(work_dir / 'epoch_2.pth')


def test_help_lists_switches():
    out = run_tool([osp.join(REPO, 'tools', 'train.py'), '--help'], cwd=REPO)
    for flag in ('--t-weights', '--t-cfg', '--t-precision', '--d-output', '--d-feature',
                 '--resume', '--amp',
                 '--cfg-options', '--work-dir', '--launcher'):
        assert flag in out


def test_bad_config_path_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'train.py'),
                           str(tmp_path / 'nope.py')], capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'does not exist' in proc.stderr and 'Traceback' not in proc.stderr


def held_as(value, before, dtype):
    """The teacher's weights are held in its forward's precision once it distils (bf16
    where the CPU has it): frozen means equal to the starting weights in that dtype."""
    return torch.equal(value.to(dtype), before.to(dtype))


def test_teacher_frozen_and_resume_restores_connectors(shapes_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(shapes_dir)
    work_dir = tmp_path / 'work'
    # a teacher checkpoint, so the loaded teacher can be compared bit for bit
    teacher_path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': MODELS.build(load_detector_cfg(TEACHER_S)).state_dict()},
               teacher_path)

    cfg = prepare_train_cfg(KD_CWD_S2N, t_weights=str(teacher_path),
                            cfg_options=quick_options(work_dir, epochs=1))
    runner = Runner.from_cfg(cfg)
    teacher_before = {k: v.clone() for k, v in runner.model.teacher.state_dict().items()}
    runner.train()
    held = next(runner.model.teacher.parameters()).dtype
    for key, value in runner.model.teacher.state_dict().items():
        assert held_as(value, teacher_before[key], held), f'teacher changed: {key}'
    connectors = {k: v.clone() for k, v in runner.model.distiller.connectors.state_dict().items()}
    student = {k: v.clone() for k, v in runner.model.student.state_dict().items()}
    assert runner.iter == 2

    # resume with the same schedule: loads epoch 1, has nothing left to train
    cfg = prepare_train_cfg(KD_CWD_S2N, t_weights=str(teacher_path), resume='auto',
                            cfg_options=quick_options(work_dir, epochs=1))
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 2 and resumed.epoch == 1
    for key, value in resumed.model.distiller.connectors.state_dict().items():
        assert torch.equal(value, connectors[key]), key
    for key, value in resumed.model.student.state_dict().items():
        assert torch.equal(value, student[key]), key
    for key, value in resumed.model.teacher.state_dict().items():
        assert held_as(value, teacher_before[key], held), key

    # a longer schedule continues from iteration 2
    cfg = prepare_train_cfg(KD_CWD_S2N, t_weights=str(teacher_path), resume='auto',
                            cfg_options=quick_options(work_dir, epochs=2))
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 4


def test_dist_train_two_cpu_processes(shapes_dir, tmp_path):
    work_dir = tmp_path / 'work'
    env = dict(os.environ, PYTHON=sys.executable, PORT='29533', OMP_NUM_THREADS='1')
    out = subprocess.run(  # the teacher in onnxruntime: a session per process
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), KD_CWD_S2N, '2',
         '--t-precision', 'ort', '--cfg-options'] +
        cli_options(quick_options(work_dir, epochs=1, batch=2)),
        cwd=shapes_dir, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    rows = scalars(str(work_dir))
    train_rows = [r for r in rows if 'student.loss_cls' in r]
    # 8 images over 2 processes x batch 2: 2 iterations per epoch (one process: 4)
    assert len(train_rows) == 2
    assert osp.isfile(work_dir / 'epoch_1.pth')
    assert 'Distributed launcher: pytorch' in out.stdout
    assert 'teacher exported to ONNX' in out.stdout  # (rank 0 logs)

    test = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_test.sh'), KD_CWD_S2N,
         str(work_dir / 'epoch_1.pth'), '2', '--work-dir', str(tmp_path / 'test'),
         '--cfg-options', 'test_dataloader.num_workers=0',
         'test_dataloader.persistent_workers=False'],
        cwd=shapes_dir, capture_output=True, text=True, timeout=600, env=env)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-5000:]
    assert 'coco/bbox_mAP' in test.stdout


def bbox_map(out):
    return float(re.search(r'coco/bbox_mAP: ([\d.]+)', out).group(1))


def test_test_tool_evaluates_the_right_weights(shapes_dir, tmp_path):
    """train -> tools/test.py, four ways to the same student, on val labels that are that
    student's own top detections (tests/helpers/self_labels.py): its weights score ~1,
    any other weights far less, so equal numbers mean the same weights were evaluated.

    * the distillation config with the distillation checkpoint;
    * kd_to_student.py, then the student's config with the student checkpoint;
    * the student's config with the distillation checkpoint (was: every key missing,
      random weights scored without a word; now: its student, EMA weights, said so);
    * the distillation config with the student checkpoint (was: the same).
    The checkpoint's raw (not EMA) student and a random checkpoint score far lower on the
    same labels, and a checkpoint of another architecture is a named error."""
    from mmkd_yolo.fileio import load_checkpoint_file

    from ..helpers.self_labels import self_labelled_shapes, well_posed_head
    work_dir = tmp_path / 'work'
    run_tool([osp.join(REPO, 'tools', 'train.py'), KD_OUT_S2N, '--cfg-options'] +
             cli_options(quick_options(work_dir, epochs=1)), cwd=shapes_dir)
    kd_ckpt = str(work_dir / 'epoch_1.pth')
    # known weights in the run's own checkpoint: a student whose detections make
    # well-posed labels (two iterations of training leave a near-uniform head), as the
    # EMA weights (state_dict) and, perturbed, as the raw ones (ema_state_dict)
    torch.manual_seed(0)
    student_state = well_posed_head(MODELS.build(load_detector_cfg(STUDENT_N))).state_dict()
    ckpt = load_checkpoint_file(kd_ckpt)
    ckpt['state_dict'].update({f'architecture.{k}': v for k, v in student_state.items()})
    ckpt['ema_state_dict'].update({f'module.architecture.{k}': v + 0.05 * torch.randn_like(v)
                                   if v.is_floating_point() else v
                                   for k, v in student_state.items()})
    torch.save(ckpt, kd_ckpt)
    root = self_labelled_shapes(shapes_dir, STUDENT_N, student_state, tmp_path / 'labelled')
    test_opts = ['--cfg-options', 'test_dataloader.num_workers=0',
                 'test_dataloader.persistent_workers=False']

    def test_py(config, ckpt, name):
        return run_tool([osp.join(REPO, 'tools', 'test.py'), config, ckpt, '--work-dir',
                         str(tmp_path / name)] + test_opts, cwd=root)

    kd_map = bbox_map(test_py(KD_OUT_S2N, kd_ckpt, 'kd'))
    assert kd_map > 0.9, kd_map
    student = tmp_path / 'student.pth'
    run_tool([osp.join(REPO, 'tools', 'model_converters', 'kd_to_student.py'), kd_ckpt,
              str(student)], cwd=root)
    keys = load_checkpoint_file(str(student))['state_dict'].keys()
    assert keys and not any(k.startswith(('teacher', 'distiller', 'architecture')) for k in keys)
    assert bbox_map(test_py(STUDENT_N, str(student), 'student')) == kd_map
    # a student checkpoint given with the distillation config: its student is evaluated
    assert bbox_map(test_py(KD_OUT_S2N, str(student), 'kd_config_student')) == kd_map
    out = test_py(STUDENT_N, kd_ckpt, 'student_of_kd')
    assert 'evaluating the student (EMA weights) of distillation checkpoint' in out
    assert bbox_map(out) == kd_map

    # the labels can fail a comparison: other weights score far lower on them, the
    # checkpoint's raw (not EMA) student as well as a random one
    raw = tmp_path / 'student_raw.pth'
    run_tool([osp.join(REPO, 'tools', 'model_converters', 'kd_to_student.py'), kd_ckpt,
              str(raw), '--no-ema'], cwd=root)
    assert bbox_map(test_py(STUDENT_N, str(raw), 'raw')) < 0.5
    other = tmp_path / 'random.pth'
    torch.manual_seed(1)
    torch.save({'state_dict': MODELS.build(load_detector_cfg(STUDENT_N)).state_dict()}, other)
    assert bbox_map(test_py(STUDENT_N, str(other), 'random')) < 0.3
    # and a checkpoint of another architecture is refused, not scored
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'test.py'), TEACHER_S,
                           str(student), '--work-dir', str(tmp_path / 'wrong')] + test_opts,
                          cwd=root, capture_output=True, text=True)
    assert proc.returncode != 0 and 'does not fit the detector of' in proc.stderr, \
        proc.stderr[-3000:]
    assert 'other shape' in proc.stderr and 'Traceback' not in proc.stderr


def test_plain_student_learns_with_weights_and_img_size(shapes_dir, tmp_path):
    """A plain config through the same options as a distillation run (--weights,
    --img-size), and a number that can fail: the training loss falls over 8 epochs of
    the tiny set (mean of the last 3 iterations 0.91x the first 3's here; the floor is
    0.95x). A loss that does not fall (no gradient, lr 0, a frozen student) fails it."""
    start = tmp_path / 'start.pth'
    torch.save({'state_dict': MODELS.build(load_detector_cfg(STUDENT_N)).state_dict()}, start)
    work_dir = tmp_path / 'work'
    out = run_tool([osp.join(REPO, 'tools', 'train.py'), STUDENT_N, '--weights', str(start),
                    '--img-size', '96', '--cfg-options'] +
                   cli_options(quick_options(work_dir, epochs=8)), cwd=shapes_dir)
    assert f'load model from: {start}' in out
    losses = [r['loss'] for r in scalars(str(work_dir)) if 'loss' in r]
    assert len(losses) == 16
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.95 * first, [round(x, 3) for x in losses]


def test_train_with_unlabeled_images(shapes_dir, tmp_path):
    """--unlabeled end to end (the student's strong view, the unlabeled images weighted
    2, the teacher's boxes as their detection targets): the sources' sizes at the start,
    each iteration's count of each kind in the log and scalars, an epoch as long as the
    labeled set makes it; check_config.py takes the option too; a plain config refuses it
    by name."""
    import cv2
    import numpy as np
    frames = tmp_path / 'frames'
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(frames / f'f{i}.jpg'), rng.integers(0, 255, (64, 64, 3), np.uint8))
    work_dir = tmp_path / 'work'
    opts = quick_options(work_dir)  # batch 4 of the 8 labeled images
    out = run_tool([osp.join(REPO, 'tools', 'train.py'), KD_OUT_S2N, '--unlabeled',
                    str(frames), '--unlabeled-ratio', '0.25', '--unlabeled-aug', 'strong',
                    '--unlabeled-weight', '2', '--unlabeled-pseudo-labels', '0.5',
                    '--cfg-options'] +
                   cli_options(opts), cwd=shapes_dir)
    assert '--unlabeled: 6 images' in out
    assert 'output distillation weighted 2; --unlabeled-aug strong: the student sees' in out
    assert 'sources: 8 labeled images, 6 unlabeled; each batch of 4: 3 labeled + 1 ' \
        'unlabeled; an epoch is 3 iterations' in out
    train_rows = [r for r in scalars(str(work_dir)) if 'student.loss_cls' in r]
    assert len(train_rows) == 6  # 2 epochs x 3 iterations
    assert {(r['data.labeled'], r['data.unlabeled']) for r in train_rows} == {(3.0, 1.0)}
    assert all(r['distill.loss_out_obj'] > 0 for r in train_rows)
    assert "1 unlabeled (detection loss against the teacher's boxes scoring > 0.5" in out
    # logged every iteration (its value, 0 to 100 boxes by construction, tells nothing)
    assert all(isinstance(r.get('data.pseudo_boxes'), float) for r in train_rows), train_rows
    out = run_tool([osp.join(REPO, 'tools', 'misc', 'check_config.py'), KD_OUT_S2N,
                    '--unlabeled', str(frames)], cwd=shapes_dir)
    assert '--unlabeled: 6 images' in out and '8 labeled (detection and distillation' in out
    # --unlabeled distils to the end (the config alone stops for its last 5 of 40 epochs)
    assert 'distilling to the end' in out and 'distilling epochs 1-40 of 40' in out
    # the dry run's batch is mixed too: the masked detection loss runs
    assert 'unlabeled images: 1 of the 2' in out and 'loss data.unlabeled: 1.0000' in out
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'train.py'), STUDENT_N,
                           '--unlabeled', str(frames)], cwd=shapes_dir, capture_output=True,
                          text=True)
    assert proc.returncode != 0 and 'needs a distillation config' in proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('length', [['--cfg-options', 'train_cfg.max_epochs=3'],
                                    ['--epochs', '3']])
def test_shortened_run_decays_over_its_own_length(tmp_path, length):
    """mmyolo's own COCO config shortened as a user shortens it, nothing else of the
    schedule set: the last iteration's learning rate is the one of a 3-epoch decay."""
    from ..test_datasets.test_yolo_data import make_yolo_tree
    data = make_yolo_tree(tmp_path / 'data', {f'img{i}': '0 0.5 0.5 0.4 0.5\n' for i in range(8)})
    work_dir = tmp_path / 'work'
    loaders = ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
               'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False']
    options = length[1:] if length[0] == '--cfg-options' else []
    out = run_tool([osp.join(REPO, 'tools', 'train.py'),
                    'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py', '--data', data,
                    '--img-size', '64', '--work-dir', str(work_dir)]
                   + (length if length[0] == '--epochs' else [])
                   + ['--cfg-options'] + options + loaders, cwd=tmp_path)
    lrs = [r['lr'] for r in scalars(str(work_dir)) if 'lr' in r]
    assert len(lrs) == 3  # 8 images, batch 16: one iteration per epoch
    # the warm-up is cut to 1 of the 3 iterations; the last two run at mmyolo's rate of
    # epoch 1 of a 3-epoch linear decay (before: of a 300-epoch one, 9.967e-3)
    assert lrs[-1] == pytest.approx(0.01 * ((1 - 1 / 3) * 0.99 + 0.01), rel=1e-4)
    assert 'schedule: 3 epochs; LR linear decay to 0.01x over 3 epochs' in out
    # --epochs sets the hook's max_epochs too; train_cfg alone leaves it for the hook to fit
    assert ('learning-rate decay over the run\'s 3 epochs (towards 0.01x), not the 300'
            in out) == (length[0] == '--cfg-options')
