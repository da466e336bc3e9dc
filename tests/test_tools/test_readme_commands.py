"""The commands of the README and of the user guides, run as written on a user's folder: its
own data.yaml, an Ultralytics YOLOv5-s teacher and YOLOv5-n student (synthetic .pt files of
those sizes for 2 classes), the COCO configs users run, mmyolo's own configs.

What is changed, and only this: ``tools/`` and ``configs/`` paths point into the
checkout, optional ``[...]`` groups are left out, and the training runs are cut to one
epoch (``--epochs 1``, so ``epoch_30.pth`` is ``epoch_1.pth``). The multi-GPU lines (a
YOLOv5-l teacher) are only checked for their launchers: two-process training is tested in
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

QUICK_START = ('README.md', '### Your own teacher and data')
TRAIN_GUIDE = ('docs/en/user_guides/train_and_distill.md', '## Fine-tune a student on your data')
DEPLOY_GUIDE = ('docs/en/user_guides/deploy.md', '## Export, evaluate, infer')
UNLABELED_GUIDE = ('docs/en/user_guides/unlabeled_images.md', '## Train with `--unlabeled`')

#: The dataloaders without worker processes, for every run; training runs without
#: ``--epochs`` are also cut to one epoch.
NO_WORKERS = ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
              'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
              'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
SHORT = ['train_cfg.max_epochs=1', 'default_hooks.param_scheduler.max_epochs=1'] + NO_WORKERS


def doc_commands(doc, heading):
    """The shell commands of the first ``bash`` block after ``heading`` in ``doc``.

    Args:
        doc (str): A Markdown file, relative to the checkout.
        heading (str): A whole heading line of it, e.g. ``'## Deploy'``.

    Returns:
        list[str]: The block's commands, continuation lines joined, comments and
        ``source`` lines left out.
    """
    text = open(osp.join(REPO, doc)).read()
    found = re.search(rf'^{re.escape(heading)}$', text, re.MULTILINE)
    assert found, f'{doc} has no heading {heading!r}: the test reads its commands from there'
    block = text[found.end():]
    block = block[block.index('```bash\n') + 8:]
    block = block[:block.index('```')].replace('\\\n', ' ')
    return [line.strip() for line in block.splitlines()
            if line.strip() and not line.strip().startswith(('#', 'source '))]


def as_run_here(command):
    """``command`` as this test runs it: paths into the checkout, one epoch, no workers."""
    args = shlex.split(re.sub(r'\[[^\]]*\]', '', command))
    assert args[0] == 'python', command
    args = [sys.executable] + [osp.join(REPO, a) if a.startswith(('tools/', 'configs/')) else a
                               for a in args[1:]]
    if args[1].endswith('train.py'):
        if '--epochs' in args:
            args[args.index('--epochs') + 1] = '1'
            args += ['--cfg-options'] + NO_WORKERS
        else:
            args += ['--cfg-options'] + SHORT
    if args[1].endswith('test.py') and 'deployment' not in args[1]:
        args += ['--cfg-options'] + NO_WORKERS[-2:]
    return [re.sub(r'epoch_\d+\.pth', 'epoch_1.pth', a) for a in args]


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


def test_train_guide_holds_the_quick_start():
    """The guide's fine-tune block is the README's quick start (run below) and the
    launchers for several GPUs and Slurm, so the two cannot drift apart."""
    quick_start = doc_commands(*QUICK_START)
    guide = doc_commands(*TRAIN_GUIDE)
    assert guide[:len(quick_start)] == quick_start
    assert [c for c in quick_start if '--epochs 30' in c] == quick_start[:2]
    launchers = guide[len(quick_start):]
    # torchrun is tested in test_train.py, srun in test_slurm.py
    assert [re.search(r'^(\w+=\S+ )*bash (tools/\w+\.sh) ', c).group(2) for c in launchers] \
        == ['tools/dist_train.sh', 'tools/slurm_train.sh', 'tools/slurm_test.sh']


@pytest.mark.slow  # subprocesses and training runs
def test_quick_start_and_deploy_commands_as_written(user_dir):
    """The README's quick start, then the deploy guide on what it trained."""
    commands = doc_commands(*QUICK_START)
    assert all(c.startswith('python ') for c in commands)
    kd_log, plain_log, _, test_out, _ = [run(as_run_here(c), user_dir) for c in commands]
    assert 'Transferred' in kd_log and 'distilling epochs 1-1 of 1' in kd_log
    assert 'distill.loss_out_box' in kd_log
    assert '--weights: Ultralytics checkpoint yolov5n.pt' in plain_log
    assert 'coco/bbox_mAP' in test_out
    assert osp.isfile(user_dir / 'work_dirs' / 'compare' / 'compare.md')
    assert osp.isfile(user_dir / 'work_dirs' / 'compare' / 'compare.png')

    commands = doc_commands(*DEPLOY_GUIDE)
    outputs = [run(as_run_here(c), user_dir) for c in commands]
    assert 'ONNX opset 17, checked by onnx.checker' in outputs[0]
    assert 'coco/bbox_mAP' in outputs[1]
    assert osp.isfile(user_dir / 'detections' / 'detections.json')


@pytest.mark.slow  # a training run
def test_unlabeled_command_as_written(user_dir):
    """The unlabeled-images guide: a folder and a recursive glob, as written."""
    commands = doc_commands(*UNLABELED_GUIDE)
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
    # the line the guide quotes (the schedule it gives is tested in test_train.py: a
    # one-epoch run would not stop anyway)
    assert ("--unlabeled: distilling to the end (StopDistillLastEpochsHook's num_last_epochs "
            '20 -> 0)') in log
    iterations = [line for line in log.splitlines() if 'Epoch(train)' in line]
    assert iterations and all('data.labeled: 8.0000  data.unlabeled: 8.0000' in line and
                              'distill.loss_out_cls' in line for line in iterations)
