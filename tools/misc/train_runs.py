"""Series of ``tools/train.py`` runs (the demo, the gain benchmark): resumable, with progress.

Each run is a subprocess with its own log and work dir; a finished run leaves ``DONE``
and is skipped next time, an interrupted one is resumed from its newest complete
checkpoint.

Paths to the tools and configs are taken from this file's place, which is the same in a
checkout (``tools/misc/``, ``configs/``) and in an installed package
(``mmkd_yolo/.mim/tools/misc/``, ``mmkd_yolo/.mim/configs/``). What the runs write (work
dirs, the generated demo set) goes under the current directory, as mmengine's
``work_dirs/`` does: an installed package's folder is no place for outputs.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(TOOLS, 'train.py')
CONFIGS = osp.join(osp.dirname(TOOLS), 'configs')
_ITER = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\]'
                   r'.*?eta: ([\d:]+(?: days?, [\d:]+)?)')


class RunFailedError(RuntimeError):
    """A ``tools/train.py`` run exited with an error; the message ends with its log's tail."""


def schedule_options(val_interval: int, seed: int) -> List[str]:
    """``--cfg-options`` of a run's validation interval and seed (the run's length is
    ``train_run(epochs=...)``: ``tools/train.py --epochs``, as users shorten a run).

    Args:
        val_interval (int): Epochs between validations and checkpoints.
        seed (int): The run's random seed.
    """
    return [f'train_cfg.val_interval={val_interval}',
            f'default_hooks.checkpoint.interval={val_interval}',
            'default_hooks.checkpoint.max_keep_ckpts=1', f'randomness.seed={seed}']


def train_run(work_dir: str, config: str, args: List[str], options: List[str],
              on_progress: Optional[Callable[[str], None]] = None,
              epochs: Optional[int] = None) -> float:
    """One ``tools/train.py`` run; seconds taken, 0 when it had finished before.

    The run is started in the current directory, so relative paths in ``work_dir``,
    ``args`` and ``options`` mean the same to it as to the caller.

    Args:
        work_dir (str): The run's work dir (log in ``train.log``).
        config (str): Config file.
        args (list[str]): Options such as ``--t-weights``, ``--img-size``.
        options (list[str]): ``--cfg-options`` entries.
        on_progress (callable, optional): Called with a short line (epoch, iteration,
            mmengine's ETA) for each logged training iteration.
        epochs (int, optional): The run's length (``--epochs``); None: the config's.

    Raises:
        RunFailedError: The run exited with an error (its work dir is kept, so that the
            next call resumes it).
    """
    done = osp.join(work_dir, 'DONE')
    if osp.isfile(done):
        return 0.0
    os.makedirs(work_dir, exist_ok=True)
    resume = ['--resume'] if glob.glob(osp.join(work_dir, 'epoch_*.pth')) else []
    length = ['--epochs', str(epochs)] if epochs else []
    cmd = [sys.executable, TRAIN, config, '--work-dir', work_dir, *args, *length, *resume]
    if options:
        cmd += ['--cfg-options', *options]
    max_epochs = epochs or next(
        (o.split('=')[1] for o in options if o.startswith('train_cfg.max_epochs=')), '?')
    log_file = osp.join(work_dir, 'train.log')
    start = time.time()
    with open(log_file, 'a') as log:
        log.write(' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        for line in proc.stdout:
            log.write(line)
            m = _ITER.search(line)
            if m and on_progress:
                on_progress(f'epoch {m.group(1)}/{max_epochs}, iteration '
                            f'{m.group(2)}/{m.group(3)}, eta {m.group(4)}')
        returncode = proc.wait()
    if returncode != 0:
        with open(log_file) as f:
            tail = ''.join(f.readlines()[-15:])
        raise RunFailedError(f'run failed (exit {returncode}): {log_file} ends with:\n{tail}')
    open(done, 'w').close()
    return time.time() - start


def val_history(work_dir: str) -> List[dict]:
    """Every validation of a run: ``{'epoch', 'mAP', 'mAP50'}``, in order.

    Args:
        work_dir (str): The run's work dir (mmengine's ``*/vis_data/scalars.json``).
    """
    rows = []
    for rec in _scalars(work_dir):
        if 'coco/bbox_mAP' in rec:
            rows.append(dict(epoch=rec.get('step', len(rows) + 1), mAP=rec['coco/bbox_mAP'],
                             mAP50=rec['coco/bbox_mAP_50']))
    by_epoch = {r['epoch']: r for r in rows}  # a resumed run may log an epoch twice
    return [by_epoch[e] for e in sorted(by_epoch)]


def loss_history(work_dir: str, key: str = 'loss') -> Dict[int, float]:
    """Mean training loss per epoch.

    Args:
        work_dir (str): The run's work dir.
        key (str): ``loss`` or a part such as ``student.loss_bbox``.
    """
    per_epoch: Dict[int, List[float]] = {}
    for rec in _scalars(work_dir):
        if key in rec and 'epoch' in rec:
            per_epoch.setdefault(int(rec['epoch']), []).append(rec[key])
    return {e: sum(v) / len(v) for e, v in sorted(per_epoch.items())}


def _scalars(work_dir: str) -> List[dict]:
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            rows += [json.loads(line) for line in f]
    return rows


class Progress:
    """``[k/n] name: took 2m10s, ETA 14m`` lines from the runs actually trained.

    Args:
        total (int): Number of runs.
        prefix (str): Tag of each line (the script's name).
    """

    def __init__(self, total: int, prefix: str) -> None:
        self.total, self.prefix = total, prefix
        self.done, self.spent, self.trained = 0, 0.0, 0

    def step(self, name: str, seconds: float) -> None:
        """Print one run's line; ``seconds`` 0: it had finished before."""
        self.done += 1
        if seconds:
            self.spent += seconds
            self.trained += 1
        left = self.total - self.done
        eta = (f', ETA of the rest {fmt_seconds(self.spent / self.trained * left)}'
               if self.trained and left else '')
        took = f'took {fmt_seconds(seconds)}' if seconds else 'done before, reused'
        print(f'[{self.prefix}] [{self.done}/{self.total}] {name}: {took}{eta}', flush=True)


def fmt_seconds(seconds: float) -> str:
    """``2m05s``."""
    m, s = divmod(int(round(seconds)), 60)
    return f'{m}m{s:02d}s'


#: The demo task of ``make demo`` and of ``benchmarks/kd_gain.py demo``: generated data
#: (:func:`~mmkd_yolo.datasets.make_shapes_dataset`) and schedules.
DEMO_TASK = dict(num_train=512, num_val=128, img_size=160, data_seed=0, teacher_epochs=40,
                 epochs=30, val_interval=5)
_CPU_TAIL = 'v61_fast_1xb16-40e_shapes-160.py'
DEMO_TEACHER_CFG = osp.join(CONFIGS, 'yolov5', f'yolov5_s-{_CPU_TAIL}')
DEMO_STUDENT_CFG = osp.join(CONFIGS, 'yolov5', f'yolov5_n-{_CPU_TAIL}')
DEMO_KD_CFG = osp.join(CONFIGS, 'distill', 'yolov5', f'kd-out_yolov5_s-to-n-{_CPU_TAIL}')
#: Under the current directory, as mmengine's ``work_dirs/<config name>``.
DEMO_WORK_DIR = osp.join('work_dirs', 'demo')


def demo_data(task: dict) -> str:
    """The demo set's folder (under the current directory), generated on first use.

    Args:
        task (dict): :data:`DEMO_TASK` or one of its shape (``num_train``, ``num_val``,
            ``img_size``, ``data_seed``).
    """
    root = osp.join('data', 'shapes_demo_{num_train}x{img_size}_seed{data_seed}'.format(**task))
    if not osp.isfile(osp.join(root, 'annotations', 'val.json')):
        from mmkd_yolo.datasets import make_shapes_dataset
        make_shapes_dataset(root, num_train=task['num_train'], num_val=task['num_val'],
                            img_size=task['img_size'], seed=task['data_seed'])
    return root


def demo_data_options(root: str) -> List[str]:
    """``--cfg-options`` pointing the CPU-scale configs at the demo set.

    Args:
        root (str): The set's folder (:func:`demo_data`).
    """
    return [f'train_dataloader.dataset.data_root={root}/',
            f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/',
            f'val_evaluator.ann_file={root}/annotations/val.json',
            f'test_evaluator.ann_file={root}/annotations/val.json']


def demo_run_dirs(task: dict, seed: int, work_dir: str = DEMO_WORK_DIR) -> Dict[str, str]:
    """Work dirs of the demo's runs, keyed by what makes them (data, schedules, configs;
    and the students' seed), so the demo and the gain benchmark share them and a rerun
    reuses them. The teacher is trained once per task, with the data's seed.

    Args:
        task (dict): :data:`DEMO_TASK` or one of its shape.
        seed (int): The students' seed.
        work_dir (str): The folder of the runs' work dirs.

    Returns:
        dict: ``teacher``, ``plain`` and ``distilled`` work dirs.
    """
    text = json.dumps(task)
    for path in (DEMO_TEACHER_CFG, DEMO_STUDENT_CFG, DEMO_KD_CFG):
        with open(path) as f:
            text += f.read()
    key = hashlib.sha1(text.encode()).hexdigest()[:8]
    return dict(teacher=osp.join(work_dir, f'teacher_s-{key}'),
                plain=osp.join(work_dir, f'student_n-{key}-seed{seed}'),
                distilled=osp.join(work_dir, f'kd-out_s-to-n-{key}-seed{seed}'))
