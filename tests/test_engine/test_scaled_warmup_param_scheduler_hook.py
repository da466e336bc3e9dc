"""ScaledWarmupParamSchedulerHook: a short run leaves the warm-up; a long one is mmyolo's."""
from types import SimpleNamespace

import pytest
import torch

from mmkd_yolo.engine import ScaledWarmupParamSchedulerHook


def run_schedule(hook, max_epochs, per_epoch):
    """The weights' learning rate at each iteration, as the hook sets it."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    optimizer = torch.optim.SGD([{'params': [p]} for p in params], lr=0.01, momentum=0.937)
    runner = SimpleNamespace(optim_wrapper=SimpleNamespace(optimizer=optimizer),
                             train_dataloader=[None] * per_epoch, max_epochs=max_epochs,
                             iter=0, epoch=0)
    hook.before_train(runner)
    lrs = []
    for epoch in range(max_epochs):
        runner.epoch = epoch
        for _ in range(per_epoch):
            hook.before_train_iter(runner, 0)
            lrs.append(optimizer.param_groups[0]['lr'])
            runner.iter += 1
        hook.after_train_epoch(runner)
    return lrs


def test_short_run_leaves_the_warmup():
    # mmyolo's COCO settings, a 30-epoch fine-tune of 4 iterations per epoch: its own
    # warm-up (1000 iterations) never ends and the lr peaks at 1.2e-3
    kwargs = dict(scheduler_type='linear', lr_factor=0.01, max_epochs=30,
                  warmup_mim_iter=1000)
    from mmyolo.engine.hooks import YOLOv5ParamSchedulerHook
    theirs = run_schedule(YOLOv5ParamSchedulerHook(**kwargs), 30, 4)
    assert max(theirs) < 0.0013
    ours = run_schedule(ScaledWarmupParamSchedulerHook(**kwargs), 30, 4)
    assert ours[40] == pytest.approx(0.01 * (1 - 10 / 30 * 0.99), rel=1e-6)  # warm-up: 40 its
    assert max(ours) > 0.006 and ours[-1] < ours[41]  # then mmyolo's linear decay


def test_long_run_is_mmyolos():
    kwargs = dict(scheduler_type='linear', lr_factor=0.01, max_epochs=40, warmup_mim_iter=50)
    from mmyolo.engine.hooks import YOLOv5ParamSchedulerHook
    assert run_schedule(ScaledWarmupParamSchedulerHook(**kwargs), 40, 32) == run_schedule(
        YOLOv5ParamSchedulerHook(**kwargs), 40, 32)


def test_every_training_config_gets_it():
    """tools/train.py's configs, plain (mmyolo's own) and distillation, use this hook in
    place of mmyolo's."""
    from mmkd_yolo.apis import prepare_train_cfg

    from ..conftest import KD_OUT_S2N
    for config in ('mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py', KD_OUT_S2N):
        scheduler = prepare_train_cfg(config).default_hooks.param_scheduler
        assert scheduler.type == 'mmkd_yolo.ScaledWarmupParamSchedulerHook', config


def test_decay_follows_the_runs_length_not_the_configured_one(caplog):
    """mmyolo's COCO configs say max_epochs=300 in the hook; a run shortened to 30 epochs
    (train_cfg.max_epochs alone) decays over its 30, as a 30-epoch config would."""
    kwargs = dict(scheduler_type='linear', lr_factor=0.01, warmup_mim_iter=50)
    from mmyolo.engine.hooks import YOLOv5ParamSchedulerHook
    configured_300 = run_schedule(ScaledWarmupParamSchedulerHook(max_epochs=300, **kwargs),
                                  30, 8)
    written_for_30 = run_schedule(YOLOv5ParamSchedulerHook(max_epochs=30, **kwargs), 30, 8)
    assert configured_300 == written_for_30
    # the last epoch's rate: mmyolo's linear factor of epoch 28 of 30, not of 300 (0.917)
    assert configured_300[-1] == pytest.approx(0.01 * ((1 - 28 / 30) * 0.99 + 0.01))
    assert configured_300[-1] < 0.001
    mmyolos_300 = run_schedule(YOLOv5ParamSchedulerHook(max_epochs=300, **kwargs), 30, 8)
    assert mmyolos_300[-1] == pytest.approx(0.01 * ((1 - 28 / 300) * 0.99 + 0.01))
