"""StopDistillLastEpochsHook: the stop follows the run's real length, scaled to it."""
from types import SimpleNamespace

import pytest
from mmengine.logging import HistoryBuffer

from mmkd_yolo.engine import StopDistillLastEpochsHook


class ListLogger:
    def __init__(self):
        self.lines = []

    def info(self, line):
        self.lines.append(line)

    def warning(self, line):
        self.lines.append(f'WARNING {line}')


def fake_runner(max_epochs):
    model = SimpleNamespace(distillation_stopped=False)
    hub = SimpleNamespace(log_scalars={
        'train/student.loss_cls': HistoryBuffer(), 'train/distill.loss_out_box': HistoryBuffer(),
        'train/distill.loss_out_obj': HistoryBuffer(), 'train/lr': HistoryBuffer()})
    return SimpleNamespace(max_epochs=max_epochs, epoch=0, model=model, logger=ListLogger(),
                           message_hub=hub)


def run_epochs(hook, runner):
    hook.before_train(runner)
    distilled = []
    for epoch in range(runner.max_epochs):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        distilled.append(not runner.model.distillation_stopped)
    return distilled


@pytest.mark.parametrize('num_last,fraction,max_epochs,last', [
    (20, 1 / 15, 300, 20),  # mmyolo's COCO schedule: as configured
    (20, 1 / 15, 30, 2),    # a 30-epoch fine-tune: the last 2, not all 30 (was: no distillation)
    (20, 1 / 15, 10, 1),
    (20, 1 / 15, 7, 0),     # short runs distil throughout
    (5, 1 / 6, 40, 5),      # the CPU-scale configs: 5 of 40 and of 30, as the demo measured
    (5, 1 / 6, 30, 5),
    (5, 1 / 6, 1, 0),       # a 1-epoch run distils (was: no distill.* loss at all)
    (5, 1 / 6, 45, 5),      # 7.5 rounds up to 8, capped at 5
    (20, 1 / 6, 45, 8),
    (20, 1 / 6, 3, 1),      # 0.5 rounds up (Python's round() would give 0)
    (0, 1 / 15, 300, 0),
])
def test_stop_scales_with_the_schedule(num_last, fraction, max_epochs, last):
    runner = fake_runner(max_epochs)
    hook = StopDistillLastEpochsHook(num_last_epochs=num_last, last_fraction=fraction)
    distilled = run_epochs(hook, runner)
    assert distilled == [True] * (max_epochs - last) + [False] * last
    assert runner.logger.lines[0].startswith(
        f'distilling epochs 1-{max_epochs - last} of {max_epochs}')


def test_stopped_once_and_stale_distill_scalars_dropped():
    runner = fake_runner(10)
    hook = StopDistillLastEpochsHook(num_last_epochs=20)  # 1/15 of 10: the last 1
    run_epochs(hook, runner)
    assert runner.logger.lines[0].startswith('distilling epochs 1-9 of 10; the last 1')
    stopped = [line for line in runner.logger.lines if 'Distillation has been stopped' in line]
    assert stopped == ['Distillation has been stopped! (from epoch 10 of 10)']
    assert sorted(runner.message_hub.log_scalars) == ['train/lr', 'train/student.loss_cls']


def test_stopped_message_once_over_several_stopped_epochs():
    runner = fake_runner(300)
    run_epochs(StopDistillLastEpochsHook(num_last_epochs=20), runner)
    assert sum('has been stopped' in line for line in runner.logger.lines) == 1


def test_bad_arguments_refused():
    with pytest.raises(ValueError, match='>= 0'):
        StopDistillLastEpochsHook(num_last_epochs=-1)
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        StopDistillLastEpochsHook(num_last_epochs=5, last_fraction=1.0)


def test_a_fraction_that_stops_everything_is_said_loudly():
    runner = fake_runner(1)
    distilled = run_epochs(StopDistillLastEpochsHook(num_last_epochs=1, last_fraction=0.9),
                           runner)
    assert distilled == [False]
    assert runner.logger.lines[0].startswith('WARNING distilling no epoch of 1')


def test_on_a_model_that_does_not_distil_is_a_config_error():
    from mmkd_yolo.errors import ConfigError
    runner = fake_runner(10)
    runner.model = SimpleNamespace()  # a plain detector
    hook = StopDistillLastEpochsHook(num_last_epochs=20)
    hook.before_train(runner)
    runner.epoch = 9
    with pytest.raises(ConfigError, match='does not distil'):
        hook.before_train_epoch(runner)
