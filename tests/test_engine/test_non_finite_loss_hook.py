"""NonFiniteLossHook: one NaN/inf stop for plain runs and distillation runs, stopped or not."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.runner import Runner

from mmkd_yolo.apis import prepare_train_cfg
from mmkd_yolo.engine import NonFiniteLossHook
from mmkd_yolo.errors import NonFiniteLossError

from ..conftest import KD_OUT_S2N, STUDENT_N, quick_options


def test_names_the_bad_parts_and_the_last_finite_values():
    hook, runner = NonFiniteLossHook(), SimpleNamespace(iter=6)
    hook.after_train_iter(runner, 0, outputs={'loss': torch.tensor(3.0),
                                              'student.loss_cls': torch.tensor(1.25),
                                              'distill.loss_out_box': torch.tensor(1.75)})
    with pytest.raises(NonFiniteLossError) as info:
        hook.after_train_iter(runner, 1, outputs={'loss': torch.tensor(float('nan')),
                                                  'student.loss_cls': torch.tensor(1.0),
                                                  'distill.loss_out_box': torch.tensor(
                                                      float('inf'))})
    msg = str(info.value)
    assert msg.startswith('iteration 7: loss, distill.loss_out_box became nan, inf')
    assert "'student.loss_cls': 1.25" in msg and '--resume' in msg


@pytest.mark.slow  # a Runner's training run
@pytest.mark.parametrize('config,extra', [
    (STUDENT_N, {}),  # a plain run: no check at all before
    # a distillation run whose distillation is stopped for the whole (1-epoch) run: the
    # check used to be skipped once distillation stopped
    (KD_OUT_S2N, {'custom_hooks.1.num_last_epochs': 1, 'custom_hooks.1.last_fraction': 0.9}),
])
def test_training_stops_at_an_infinite_loss(shapes_dir, tmp_path, monkeypatch, config, extra):
    monkeypatch.chdir(shapes_dir)
    opts = dict(quick_options(tmp_path / 'work', epochs=1), **extra)
    head = 'model.architecture.bbox_head' if config == KD_OUT_S2N else 'model.bbox_head'
    opts[f'{head}.loss_cls.loss_weight'] = float('inf')
    runner = Runner.from_cfg(prepare_train_cfg(config, cfg_options=opts))
    with pytest.raises(NonFiniteLossError, match=r'iteration 1: .*loss_cls'):
        runner.train()
    if config == KD_OUT_S2N:
        assert runner.model.distillation_stopped
