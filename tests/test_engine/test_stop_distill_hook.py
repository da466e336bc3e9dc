"""StopDistillLastEpochsHook: the stop epoch follows the run's real length."""
from types import SimpleNamespace

import pytest
from mmengine.logging import MMLogger

from mmkd_yolo.engine import StopDistillLastEpochsHook


def fake_runner(max_epochs):
    model = SimpleNamespace(distillation_stopped=False)
    return SimpleNamespace(max_epochs=max_epochs, epoch=0, model=model,
                           logger=MMLogger.get_instance('stop_hook_test'))


@pytest.mark.parametrize('max_epochs,stop', [(40, 35), (30, 25), (3, -2)])
def test_stops_the_last_epochs(max_epochs, stop):
    runner = fake_runner(max_epochs)
    hook = StopDistillLastEpochsHook(num_last_epochs=5)
    hook.before_train(runner)
    assert hook.stop_epoch == stop
    for epoch in range(max_epochs):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        assert runner.model.distillation_stopped == (epoch >= stop), epoch


def test_zero_never_stops_and_negative_refused():
    runner = fake_runner(10)
    hook = StopDistillLastEpochsHook(num_last_epochs=0)
    hook.before_train(runner)
    runner.epoch = 9
    hook.before_train_epoch(runner)
    assert not runner.model.distillation_stopped
    with pytest.raises(ValueError, match='>= 0'):
        StopDistillLastEpochsHook(num_last_epochs=-1)
