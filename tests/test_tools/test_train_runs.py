"""tools/misc/train_runs.py: the run series of make demo and benchmarks/kd_gain.py.

Its runs are checked against a stub ``tools/train.py`` (it imports nothing and records
its arguments and directory), in a copy of the tools laid out as an installed package's
``.mim`` folder: tools and configs are found from the file's place, outputs go under the
current directory.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from ..conftest import CPU_TAIL, REPO
from ..helpers.scripts import load_script

TRAIN_RUNS = osp.join(REPO, 'tools', 'misc', 'train_runs.py')

#: Records argv and cwd; ``STUB_FAIL`` set: prints a log line and exits 3; else one
#: mmengine-like training line and an ``epoch_1.pth``.
STUB_TRAIN = '''import json, os, sys
with open(os.environ['STUB_RECORD'], 'a') as f:
    f.write(json.dumps(dict(argv=sys.argv, cwd=os.getcwd())) + '\\n')
if os.environ.get('STUB_FAIL'):
    print('Traceback: the stub failed on purpose')
    sys.exit(3)
print('Epoch(train)  [1][ 2/4]  lr: 0.01  eta: 0:00:07  time: 0.1  loss: 1.0')
work_dir = sys.argv[sys.argv.index('--work-dir') + 1]
open(os.path.join(work_dir, 'epoch_1.pth'), 'w').close()
'''


@pytest.fixture(scope='module')
def runs():
    return load_script(TRAIN_RUNS, 'train_runs')


@pytest.fixture
def mim(tmp_path):
    """train_runs.py copied into ``site/mmkd_yolo/.mim/tools/misc`` beside a stub
    ``tools/train.py`` and the demo configs (``.mim/configs``), loaded from there."""
    root = tmp_path / 'site' / 'mmkd_yolo' / '.mim'
    (root / 'tools' / 'misc').mkdir(parents=True)
    shutil.copy(TRAIN_RUNS, root / 'tools' / 'misc')
    (root / 'tools' / 'train.py').write_text(STUB_TRAIN)
    shutil.copytree(osp.join(REPO, 'configs'), root / 'configs')
    return root, load_script(str(root / 'tools' / 'misc' / 'train_runs.py'), 'mim_train_runs')


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A current directory outside both the checkout and the .mim copy."""
    cwd = tmp_path / 'user'
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv('STUB_RECORD', str(tmp_path / 'record.jsonl'))
    return cwd


def records(tmp_path):
    with open(tmp_path / 'record.jsonl') as f:
        return [json.loads(line) for line in f]


def write_scalars(work_dir, rows, stamp='20260101_000000'):
    path = work_dir / stamp / 'vis_data'
    path.mkdir(parents=True)
    (path / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in rows) + '\n')


def test_checkout_paths(runs):
    assert runs.TRAIN == osp.join(REPO, 'tools', 'train.py') and osp.isfile(runs.TRAIN)
    assert runs.DEMO_KD_CFG == osp.join(REPO, 'configs', 'distill', 'yolov5',
                                        f'kd-out_yolov5_s-to-n-{CPU_TAIL}')
    for cfg in (runs.DEMO_TEACHER_CFG, runs.DEMO_STUDENT_CFG, runs.DEMO_KD_CFG):
        assert osp.isfile(cfg), cfg


def test_mim_layout_paths(mim):
    root, runs = mim
    assert runs.TOOLS == str(root / 'tools')
    assert runs.TRAIN == str(root / 'tools' / 'train.py')
    assert runs.CONFIGS == str(root / 'configs')
    for cfg in (runs.DEMO_TEACHER_CFG, runs.DEMO_STUDENT_CFG, runs.DEMO_KD_CFG):
        assert cfg.startswith(str(root / 'configs') + os.sep) and osp.isfile(cfg), cfg


def test_outputs_default_under_cwd(mim, elsewhere):
    root, runs = mim
    dirs = runs.demo_run_dirs(runs.DEMO_TASK, 0)
    for work_dir in dirs.values():
        assert osp.dirname(work_dir) == osp.join('work_dirs', 'demo')
        assert osp.abspath(work_dir).startswith(str(elsewhere) + os.sep)
    task = dict(num_train=2, num_val=1, img_size=32, data_seed=0)
    data = runs.demo_data(task)
    assert osp.abspath(data) == str(elsewhere / 'data' / 'shapes_demo_2x32_seed0')
    assert osp.isfile(osp.join(data, 'annotations', 'val.json'))
    assert not any('data' in names or 'work_dirs' in names for _, names, _ in os.walk(root))


def test_train_run_in_callers_cwd_resumable(mim, elsewhere, tmp_path):
    root, runs = mim
    lines = []
    took = runs.train_run('work_dirs/run', runs.DEMO_STUDENT_CFG, ['--img-size', '32'],
                          ['randomness.seed=0'], on_progress=lines.append, epochs=3)
    assert took > 0
    assert (elsewhere / 'work_dirs' / 'run' / 'DONE').is_file()
    (first, ) = records(tmp_path)
    assert first['cwd'] == str(elsewhere)
    assert first['argv'][0] == str(root / 'tools' / 'train.py')
    assert first['argv'][1:] == [runs.DEMO_STUDENT_CFG, '--work-dir', 'work_dirs/run',
                                 '--img-size', '32', '--epochs', '3', '--cfg-options',
                                 'randomness.seed=0']
    assert lines == ['epoch 1/3, iteration 2/4, eta 0:00:07']
    log = (elsewhere / 'work_dirs' / 'run' / 'train.log').read_text()
    assert 'Epoch(train)  [1][ 2/4]' in log
    # finished: skipped, nothing started
    assert runs.train_run('work_dirs/run', runs.DEMO_STUDENT_CFG, [], []) == 0.0
    assert len(records(tmp_path)) == 1
    # interrupted after a checkpoint (no DONE): resumed
    os.remove(elsewhere / 'work_dirs' / 'run' / 'DONE')
    runs.train_run('work_dirs/run', runs.DEMO_STUDENT_CFG, [], [], epochs=3)
    assert records(tmp_path)[-1]['argv'][-3:] == ['--epochs', '3', '--resume']


def test_failed_run_raises_with_the_log_tail(mim, elsewhere, monkeypatch):
    _, runs = mim
    monkeypatch.setenv('STUB_FAIL', '1')
    with pytest.raises(runs.RunFailedError,
                       match=r'(?s)exit 3.*work_dirs/bad/train\.log.*failed on purpose'):
        runs.train_run('work_dirs/bad', runs.DEMO_STUDENT_CFG, [], [])
    assert isinstance(runs.RunFailedError('x'), RuntimeError)
    assert not (elsewhere / 'work_dirs' / 'bad' / 'DONE').exists()


def test_histories_from_scalars_resumed_runs_counted_once(runs, tmp_path):
    write_scalars(tmp_path, [
        dict(epoch=1, loss=2.0, iter=1), dict(epoch=1, loss=1.0, iter=2),
        {'coco/bbox_mAP': 0.1, 'coco/bbox_mAP_50': 0.2, 'step': 1}])
    # a resumed run logs epoch 1's validation again, then epoch 2
    write_scalars(tmp_path, [
        {'coco/bbox_mAP': 0.1, 'coco/bbox_mAP_50': 0.2, 'step': 1},
        dict(epoch=2, loss=0.5, iter=3),
        {'coco/bbox_mAP': 0.3, 'coco/bbox_mAP_50': 0.5, 'step': 2}], '20260101_000001')
    assert [h['epoch'] for h in runs.val_history(str(tmp_path))] == [1, 2]
    assert runs.val_history(str(tmp_path))[-1]['mAP'] == 0.3
    assert runs.loss_history(str(tmp_path)) == {1: 1.5, 2: 0.5}


def test_demo_dirs_keyed_by_task_and_seed(runs):
    a, b = runs.demo_run_dirs(runs.DEMO_TASK, 0), runs.demo_run_dirs(runs.DEMO_TASK, 1)
    assert a['teacher'] == b['teacher'] and a['plain'] != b['plain']
    other = runs.demo_run_dirs(dict(runs.DEMO_TASK, epochs=3), 0)
    assert other['teacher'] != a['teacher'] and other['distilled'] != a['distilled']


def test_schedule_and_progress(runs, capsys):
    opts = runs.schedule_options(5, 2)
    assert 'train_cfg.val_interval=5' in opts and 'randomness.seed=2' in opts
    # the length is --epochs, as users set it: nothing of the schedule hidden in options
    assert not any('max_epochs' in o for o in opts)
    progress = runs.Progress(3, 'x')
    progress.step('a', 60.0)
    progress.step('b', 0.0)
    out = capsys.readouterr().out
    assert '[x] [1/3] a: took 1m00s, ETA of the rest 2m00s' in out
    assert '[x] [2/3] b: done before, reused, ETA of the rest 1m00s' in out


def test_demo_runs_from_a_mim_copy(mim, elsewhere):
    """demo.py finds its helpers beside it, not through the checkout."""
    root, _ = mim
    for name in ('demo.py', 'demo_plots.py', 'demo_report.py'):
        shutil.copy(osp.join(REPO, 'tools', 'misc', name), root / 'tools' / 'misc')
    proc = subprocess.run([sys.executable, str(root / 'tools' / 'misc' / 'demo.py'), '--help'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '--work-dir' in proc.stdout and 'work_dirs/demo' in proc.stdout
