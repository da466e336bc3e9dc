"""StudentEMAHook: the average holds the student only, in EMAHook's checkpoint layout."""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmkd_yolo.converters.kd_to_student import extract_student
from mmkd_yolo.engine import StudentEMAHook
from mmkd_yolo.registry import MODELS

from ..conftest import KD_CWD_S2N


def _hook_and_model():
    cfg = Config.fromfile(KD_CWD_S2N)
    hook_cfg = dict(cfg.kd_student_ema_hook)
    hook_cfg.pop('type'), hook_cfg.pop('priority')
    model = MODELS.build(copy.deepcopy(cfg.model))
    hook = StudentEMAHook(**hook_cfg)
    runner = SimpleNamespace(model=model, _resume=False, iter=0, epoch=0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):  # as the Runner does
        hook.before_run(runner)
    return hook, model, runner


def _step(model, hook, runner):
    """A fake optimiser step on every trainable weight, then the hook's update."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1)
    hook.after_train_iter(runner, 0)
    runner.iter += 1


def test_average_holds_the_student_only():
    hook, model, _ = _hook_and_model()
    n_ema = sum(p.numel() for p in hook.ema_model.module.parameters())
    assert n_ema == sum(p.numel() for p in model.student.parameters())
    assert n_ema < sum(p.numel() for p in model.parameters()) / 3  # s teacher, n student


@pytest.mark.slow  # a distiller saved, converted and resumed
def test_checkpoint_layout_kd_to_student_and_resume(tmp_path):
    hook, model, runner = _hook_and_model()
    for _ in range(3):
        _step(model, hook, runner)
    ema = {k: v.clone() for k, v in hook.ema_model.module.state_dict().items()}
    raw = {k: v.clone() for k, v in model.student.state_dict().items()}
    key = 'backbone.stem.conv.weight'
    assert not torch.equal(ema[key], raw[key])  # the average lags the raw weights

    ckpt = {'state_dict': copy.deepcopy(model.state_dict()), 'meta': {}}
    hook.before_save_checkpoint(runner, ckpt)
    assert torch.equal(ckpt['state_dict'][f'architecture.{key}'], ema[key])
    assert torch.equal(ckpt['ema_state_dict'][f'module.architecture.{key}'], raw[key])
    assert not any(k.startswith('module.teacher.') for k in ckpt['ema_state_dict'])
    path = tmp_path / 'epoch_1.pth'
    torch.save(ckpt, path)
    assert torch.equal(extract_student(str(path))['state_dict'][key], ema[key])
    assert torch.equal(extract_student(str(path), use_ema=False)['state_dict'][key], raw[key])

    # resume: the Runner loads state_dict, then the hook swaps the raw weights back
    hook2, model2, runner2 = _hook_and_model()
    runner2._resume = True
    loaded = torch.load(path, weights_only=True)
    hook2.after_load_checkpoint(runner2, loaded)
    model2.load_state_dict(loaded['state_dict'])
    for k, v in hook2.ema_model.module.state_dict().items():
        assert torch.equal(v, ema[k]), k
    assert torch.equal(model2.student.state_dict()[key], raw[key])
