"""Run-series helpers shared by make demo and benchmarks/kd_gain.py."""
import json

from mmkd_yolo.apis.runs import (DEMO_TASK, Progress, demo_run_dirs, loss_history,
                                 schedule_options, val_history)


def write_scalars(work_dir, rows, stamp='20260101_000000'):
    path = work_dir / stamp / 'vis_data'
    path.mkdir(parents=True)
    (path / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in rows) + '\n')


def test_histories_from_scalars_resumed_runs_counted_once(tmp_path):
    write_scalars(tmp_path, [
        dict(epoch=1, loss=2.0, iter=1), dict(epoch=1, loss=1.0, iter=2),
        {'coco/bbox_mAP': 0.1, 'coco/bbox_mAP_50': 0.2, 'step': 1}])
    # a resumed run logs epoch 1's validation again, then epoch 2
    write_scalars(tmp_path, [
        {'coco/bbox_mAP': 0.1, 'coco/bbox_mAP_50': 0.2, 'step': 1},
        dict(epoch=2, loss=0.5, iter=3),
        {'coco/bbox_mAP': 0.3, 'coco/bbox_mAP_50': 0.5, 'step': 2}], '20260101_000001')
    assert [h['epoch'] for h in val_history(str(tmp_path))] == [1, 2]
    assert val_history(str(tmp_path))[-1]['mAP'] == 0.3
    assert loss_history(str(tmp_path)) == {1: 1.5, 2: 0.5}


def test_demo_dirs_keyed_by_task_and_seed():
    a, b = demo_run_dirs(DEMO_TASK, 0), demo_run_dirs(DEMO_TASK, 1)
    assert a['teacher'] == b['teacher'] and a['plain'] != b['plain']
    other = demo_run_dirs(dict(DEMO_TASK, epochs=3), 0)
    assert other['teacher'] != a['teacher'] and other['distilled'] != a['distilled']


def test_schedule_and_progress(capsys):
    opts = schedule_options(30, 5, 2)
    assert 'train_cfg.max_epochs=30' in opts and 'randomness.seed=2' in opts
    assert 'default_hooks.param_scheduler.max_epochs=30' in opts
    progress = Progress(3, 'x')
    progress.step('a', 60.0)
    progress.step('b', 0.0)
    out = capsys.readouterr().out
    assert '[x] [1/3] a: took 1m00s, ETA of the rest 2m00s' in out
    assert '[x] [2/3] b: done before, reused, ETA of the rest 1m00s' in out
