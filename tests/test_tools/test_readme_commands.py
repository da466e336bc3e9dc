"""The README's commands, run as written on a user's folder: its own data.yaml, an
Ultralytics YOLOv5-s teacher and YOLOv5-n student (synthetic .pt files of those sizes for
2 classes), the COCO configs users run, mmyolo's own configs.

What is changed, and only this: ``tools/`` and ``configs/`` paths point into the
checkout, optional ``[...]`` groups are left out, and the training runs are cut to one
epoch (``--cfg-options``, so the README's ``epoch_300.pth`` is ``epoch_1.pth``). The
multi-GPU lines (a YOLOv5-l teacher) are left out: two-process training is tested in
test_train.py, the Slurm scripts' srun command in test_slurm.py."""
import os
import os.path as osp
import re
import shlex
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.registry import MODELS

from ..conftest import REPO
from ..helpers.ultralytics_pt import write_ultralytics_pt
from ..test_datasets.test_yolo_data import make_yolo_tree

pytestmark = pytest.mark.slow  # subprocesses and training runs

SHORT = ['train_cfg.max_epochs=1', 'default_hooks.param_scheduler.max_epochs=1',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
         'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
         'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']


def readme_commands(section):
    """The shell commands of the first ``bash`` block after the heading ``section``."""
    text = open(osp.join(REPO, 'README.md')).read()
    block = text[text.index(section):]
    block = block[block.index('```bash\n') + 8:]
    block = block[:block.index('```')].replace('\\\n', ' ')
    return [line.strip() for line in block.splitlines()
            if line.strip() and not line.strip().startswith(('#', 'source '))]


def as_run_here(command):
    args = shlex.split(re.sub(r'\[[^\]]*\]', '', command))
    assert args[0] == 'python', command
    args = [sys.executable] + [osp.join(REPO, a) if a.startswith(('tools/', 'configs/')) else a
                               for a in args[1:]]
    if args[1].endswith('train.py'):
        args += ['--cfg-options'] + SHORT
    if args[1].endswith('test.py') and 'deployment' not in args[1]:
        args += ['--cfg-options'] + SHORT[-2:]
    return [a.replace('epoch_300.pth', 'epoch_1.pth') for a in args]


def run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, MMKD_CACHE=str(cwd / 'cache')))
    assert proc.returncode == 0, (' '.join(args), proc.stdout[-3000:], proc.stderr[-5000:])
    return proc.stdout + proc.stderr


@pytest.fixture
def user_dir(tmp_path):
    root = tmp_path
    labels = {f'img{i}': f'{i % 2} 0.5 0.5 0.4 0.5\n1 0.25 0.3 0.2 0.2\n' for i in range(8)}
    data = make_yolo_tree(root / 'my_data', labels, names=('cat', 'dog'))
    assert osp.isfile(data)
    (root / 'images').symlink_to(root / 'my_data' / 'images' / 'train')
    for size, deepen, widen in (('n', 0.33, 0.25), ('s', 0.33, 0.5)):
        cfg = load_detector_cfg(f'mmyolo::yolov5/yolov5_{size}-v61_syncbn_fast_8xb16-300e_coco.py')
        cfg.bbox_head.head_module.num_classes = 2
        write_ultralytics_pt(root / f'yolov5{size}.pt', MODELS.build(cfg), 2, deepen, widen)
    return root


def test_readme_commands_as_written(user_dir):
    """'Your own teacher and data', then 'Deploy the student' on what it trained."""
    commands = readme_commands('## Your own teacher and data')
    launchers = [c for c in commands if not c.startswith('python ')]
    # torchrun is tested in test_train.py, srun in test_slurm.py
    assert [re.search(r'^(\w+=\S+ )*bash (tools/\w+\.sh) ', c).group(2) for c in launchers] \
        == ['tools/dist_train.sh', 'tools/slurm_train.sh', 'tools/slurm_test.sh']
    outputs = [run(as_run_here(c), user_dir) for c in commands if c.startswith('python ')]
    kd_log, plain_log, _, test_out = outputs
    assert 'Transferred' in kd_log and 'distilling epochs 1-1 of 1' in kd_log
    assert 'distill.loss_out_box' in kd_log
    assert '--weights: Ultralytics checkpoint yolov5n.pt' in plain_log
    assert 'coco/bbox_mAP' in test_out

    commands = readme_commands('## Deploy the student')
    outputs = [run(as_run_here(c), user_dir) for c in commands]
    assert 'ONNX opset 17, checked by onnx.checker' in outputs[0]
    assert 'coco/bbox_mAP' in outputs[1]
    assert osp.isfile(user_dir / 'detections' / 'detections.json')


def test_readme_unlabeled_command_as_written(user_dir):
    """'Distilling on unlabeled images': a folder and a recursive glob, as written."""
    commands = readme_commands('### Distilling on unlabeled images')
    assert len(commands) == 1 and "--unlabeled 'crawl/**/*.jpg'" in commands[0]
    rng = np.random.default_rng(1)
    files = [user_dir / 'footage' / f'frame{i}.jpg' for i in range(5)] + \
        [user_dir / 'crawl' / 'site' / f'page{i}' / 'photo.jpg' for i in range(3)]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    log = run(as_run_here(commands[0]), user_dir)
    # both sources found (the glob through nested folders), the batch split by the ratio
    # in every logged iteration, distilled (the detection loss restricted to the labeled
    # images is tested in test_yolov5_distill.py)
    assert 'sources: 8 labeled images, 8 unlabeled' in log, log[-3000:]
    assert 'each batch of 16: 8 labeled + 8 unlabeled' in log
    # the line the README quotes (the schedule it gives is tested in test_train.py: a
    # one-epoch run would not stop anyway)
    assert ("--unlabeled: distilling to the end (StopDistillLastEpochsHook's num_last_epochs "
            '20 -> 0)') in log
    iterations = [line for line in log.splitlines() if 'Epoch(train)' in line]
    assert iterations and all('data.labeled: 8.0000  data.unlabeled: 8.0000' in line and
                              'distill.loss_out_cls' in line for line in iterations)
