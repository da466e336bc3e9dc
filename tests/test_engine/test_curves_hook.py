"""CurvesHook: curves.png for every training run, across resumes, never fatal."""
import json
import logging
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.runner import Runner
from PIL import Image

from mmkd_yolo.apis import prepare_train_cfg
from mmkd_yolo.engine import CurvesHook
from mmkd_yolo.engine import curves_hook as curves_module
from mmkd_yolo.engine.curves_hook import run_scalars

from ..conftest import KD_OUT_N2N, STUDENT_N, quick_options

MAPS = ('coco/bbox_mAP', 'coco/bbox_mAP_50')


def train(config, work_dir, epochs, **extra):
    """Train in-process with a validation every epoch; returns the run's CurvesHook."""
    opts = dict(quick_options(work_dir, epochs=epochs, batch=8), **{
        'train_cfg.val_interval': 1,
        # mmyolo names its visualizer 'visualizer': a second Runner in the same process
        # would reuse the first one's, writing its scalars into the first run's folder
        'visualizer.name': f'curves_{work_dir}_{epochs}'})
    runner = Runner.from_cfg(prepare_train_cfg(config, cfg_options=opts, **extra))
    runner.train()
    hooks = [h for h in runner.hooks if isinstance(h, CurvesHook)]
    assert len(hooks) == 1
    return hooks[0]


def check_png(path):
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == 'PNG' and img.size[0] > 600 and img.size[1] > 200


@pytest.mark.slow  # trains
def test_plain_run_then_resumed(shapes_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(shapes_dir)
    work = tmp_path / 'work'
    series = train(STUDENT_N, work, epochs=2).series
    check_png(work / 'curves.png')
    assert not any(k.startswith(('distill.', 'student.')) for k in series)
    assert {'loss', 'loss_cls', 'loss_obj', 'loss_bbox', 'lr', *MAPS} <= set(series)
    for key in MAPS:
        assert series[key][0] == [1, 2]  # one point per validation
    assert series['loss'][0] == [1.0, 2.0]  # x in epochs (1 iteration per epoch)

    # --resume in a new process (timestamp folder): the picture still starts at epoch 1
    resumed = train(STUDENT_N, work, epochs=3, resume='auto').series
    check_png(work / 'curves.png')
    for key in MAPS:
        assert resumed[key][0] == [1, 2, 3]
        assert resumed[key][1][:2] == series[key][1]
    assert resumed['loss'][0] == [1.0, 2.0, 3.0]
    assert resumed['loss'][1][:2] == series['loss'][1]


@pytest.mark.slow  # trains
def test_distillation_run(shapes_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(shapes_dir)
    series = train(KD_OUT_N2N, tmp_path / 'work', epochs=2).series
    check_png(tmp_path / 'work' / 'curves.png')
    assert {'distill.loss_out_box', 'distill.loss_out_obj', 'distill.loss_out_cls',
            'student.loss_cls', 'student.loss_obj', 'student.loss_bbox', 'loss', 'lr',
            *MAPS} <= set(series)
    assert all(len(series[k][0]) == 2 for k in MAPS)


def test_on_by_default_and_the_switch(shapes_dir, monkeypatch):
    monkeypatch.chdir(shapes_dir)

    def curves_hooks(**options):
        cfg = prepare_train_cfg(STUDENT_N, cfg_options=dict(options, work_dir='w'))
        return [h for h in cfg.custom_hooks if h['type'].endswith('CurvesHook')]

    assert curves_hooks() == [dict(type='mmkd_yolo.CurvesHook')]
    assert curves_hooks(curves=False) == []
    listed = [dict(type='NonFiniteLossHook'), dict(type='CurvesHook', filename='c.png')]
    assert curves_hooks(custom_hooks=listed) == [dict(type='CurvesHook', filename='c.png')]
    assert curves_hooks(custom_hooks=listed, curves=False) == []


def write_scalars(work_dir, stamp, rows, tail=''):
    path = work_dir / stamp / 'vis_data'
    path.mkdir(parents=True)
    (path / 'scalars.json').write_text(
        ''.join(json.dumps(r) + '\n' for r in rows) + tail)


def it(i, epoch, loss):
    return dict(loss=loss, lr=0.01, epoch=epoch, iter=i, step=i)


def val(epoch, m):
    return {'coco/bbox_mAP': m, 'coco/bbox_mAP_50': 2 * m, 'step': epoch}


def test_run_scalars_follow_the_resumes_back_to_the_fresh_start(tmp_path):
    """2 iterations per epoch. An unrelated older run of the same work dir; the fresh
    start of this run, killed while logging epoch 3; a resume from epoch 2 killed in epoch
    4; a resume from epoch 3 (this process)."""
    write_scalars(tmp_path, '20260101_000000', [it(i, (i + 1) // 2, 9.0) for i in range(1, 9)]
                  + [val(e, 0.9) for e in (1, 2, 3, 4)])
    write_scalars(tmp_path, '20260102_000000',
                  [it(1, 1, 1.0), it(2, 1, 1.0), val(1, 0.1), it(3, 2, 1.0), it(4, 2, 1.0),
                   val(2, 0.2), it(5, 3, 1.0)], tail='{"loss": 1.0, "ep')
    write_scalars(tmp_path, '20260103_000000',
                  [it(5, 3, 2.0), it(6, 3, 2.0), val(3, 0.3), it(7, 4, 2.0)])
    write_scalars(tmp_path, '20260104_000000', [it(7, 4, 3.0), it(8, 4, 3.0), val(4, 0.4)])
    train, vals = run_scalars(str(tmp_path), str(tmp_path / '20260104_000000'), 6, 3)
    assert {i: r['loss'] for i, r in train.items()} == {
        1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 2.0, 6: 2.0, 7: 3.0, 8: 3.0}
    assert {e: r['coco/bbox_mAP'] for e, r in vals.items()} == {1: 0.1, 2: 0.2, 3: 0.3,
                                                                4: 0.4}
    series = curves_module.curve_series(train, vals, iters_per_epoch=2)
    assert series['loss'][0] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert series['coco/bbox_mAP_50'] == ([1, 2, 3, 4], [0.2, 0.4, 0.6, 0.8])

    # a fresh run takes nothing from the older ones
    train, vals = run_scalars(str(tmp_path), str(tmp_path / '20260104_000000'), 0, 0)
    assert sorted(train) == [7, 8] and sorted(vals) == [4]


def test_a_failure_to_draw_is_a_warning_once(tmp_path, monkeypatch, caplog):
    write_scalars(tmp_path, '20260101_000000', [it(1, 1, 1.0), val(1, 0.1)])

    def broken(*args, **kwargs):
        raise RuntimeError('no fonts')

    monkeypatch.setattr(curves_module, 'plot_curves', broken)
    logger = logging.getLogger('curves_test')
    runner = SimpleNamespace(work_dir=str(tmp_path), log_dir=str(tmp_path / '20260101_000000'),
                             iter=0, epoch=0, train_loop=None, train_dataloader=[0],
                             logger=logger)
    hook = CurvesHook()
    hook.before_train(runner)
    with caplog.at_level(logging.WARNING, logger='curves_test'):
        hook.after_val_epoch(runner)
        hook.after_train(runner)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ['CurvesHook: curves.png not drawn (RuntimeError: no fonts); '
                        'training goes on.']
    assert not osp.exists(tmp_path / 'curves.png') and hook.series == {}
