"""The compatibility shims: mmrazor on torch 2.x, mmengine on the safe loader, mmcv ops."""
import os
import pickle
import subprocess
import sys

import pytest
import torch

import mmkd_yolo
from mmkd_yolo import compat
from mmkd_yolo.errors import UnsafeCheckpointError
from mmkd_yolo.fileio import load_checkpoint_file


def test_mmrazor_distillation_parts_registered():
    from mmrazor.registry import HOOKS, MODELS, TASK_UTILS
    for name in ('SingleTeacherDistill', 'ConfigurableDistiller', 'ChannelWiseDivergence',
                 'ConvModuleConnector', 'L2Loss'):
        assert MODELS.get(name) is not None, name
    assert TASK_UTILS.get('ModuleOutputsRecorder') is not None
    assert HOOKS.get('StopDistillHook') is not None
    # and ours, through mmrazor's registry tree
    assert MODELS.get('mmkd_yolo.YOLOv5Distill') is mmkd_yolo.algorithms.YOLOv5Distill


def test_cwd_loss_computes_after_import():
    from mmengine.registry import DefaultScope
    from mmrazor.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmrazor'):  # whatever scope a test left
        cwd = MODELS.build(dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=1.0))
    s, t = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    assert cwd(s, t).item() > 0
    assert cwd(t, t).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_torch_version_unchanged_in_fresh_interpreter():
    code = ('import torch; real = torch.version.__version__; import mmkd_yolo, mmrazor.models; '
            'assert torch.__version__ == real, (torch.__version__, real); print(real)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == torch.version.__version__


def test_torch_version_restored_on_error():
    real = torch.__version__
    with pytest.raises(ZeroDivisionError):
        with compat.torch_version_as('1.12.1'):
            assert torch.__version__ == '1.12.1'
            1 / 0
    assert torch.__version__ == real


def test_measures_reported():
    text = ' '.join(compat.ACTIVE_MEASURES)
    assert 'mmrazor' in text and 'weights_only=True' in text
    from mmkd_yolo.apis.env import collect_env
    env = collect_env()
    assert env['torch'] == torch.__version__
    assert env['mmcv ops'].startswith('compiled')
    assert env['mmrazor'] == '1.0.0' and env['mmyolo'] == '0.6.0'
    assert any(k.startswith('compat measure') for k in env)


def test_batched_nms_runs():
    from mmcv.ops import batched_nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.],
                          [0., 0., 10., 10.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    idxs = torch.tensor([0, 0, 0, 1])  # the last box is another class: kept
    dets, keep = batched_nms(boxes, scores, idxs, dict(type='nms', iou_threshold=0.5))
    assert sorted(keep.tolist()) == [0, 2, 3]
    assert dets.shape == (3, 5)


class _ToyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def _toy_runner(work_dir, max_iters, resume=False):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.toy = _ToyModel()

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.toy(inputs, mode=mode)

    data = [dict(inputs=torch.randn(2)) for _ in range(8)]
    return Runner(
        model=Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        resume=resume,
        default_scope='mmengine',
        experiment_name=f'toy_{max_iters}_{resume}')


def test_mmengine_checkpoint_resumes_under_safe_loader(tmp_path):
    runner = _toy_runner(tmp_path, max_iters=2)
    runner.train()
    ckpt = tmp_path / 'iter_2.pth'
    assert ckpt.is_file()
    # The checkpoint holds what the plain safe loader refuses (history buffers, numpy).
    names = {n.split('.')[-1] for n in torch.serialization.get_unsafe_globals_in_checkpoint(ckpt)}
    assert 'HistoryBuffer' in names
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True)
    weight = runner.model.toy.linear.weight.detach().clone()

    resumed = _toy_runner(tmp_path, max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    assert (tmp_path / 'iter_4.pth').is_file()
    # history from before the resume survived the round trip
    hist = resumed.message_hub.get_scalar('train/loss')
    assert len(hist.data[0]) >= 4
    loaded = load_checkpoint_file(str(ckpt))
    assert torch.equal(loaded['state_dict']['toy.linear.weight'], weight)
    assert loaded['meta']['iter'] == 2


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd, ))


class _EvilEval:
    def __init__(self, expr):
        self.expr = expr

    def __reduce__(self):
        import builtins
        return (builtins.eval, (self.expr, ))


@pytest.mark.parametrize('kind', ['os.system', 'builtins.eval'])
def test_crafted_checkpoint_refused_and_not_run(tmp_path, kind):
    from mmengine.runner.checkpoint import _load_checkpoint
    marker = tmp_path / 'pwned'
    if kind == 'os.system':
        payload = _Evil(f'touch {marker}')
    else:
        payload = _EvilEval(f"open({str(marker)!r}, 'w').write('x')")
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': payload}, path)
    with pytest.raises(UnsafeCheckpointError, match='not a plain checkpoint') as info:
        _load_checkpoint(str(path), map_location='cpu')
    expected = 'system' if kind == 'os.system' else 'eval'
    assert expected in str(info.value)
    assert not marker.exists()


@pytest.mark.slow
def test_deep_input_is_a_recursion_error_not_a_crash():
    """mmrazor raises the recursion limit to 2**20 when imported; deep JSON (an ONNX
    file's metadata) then overflowed the C stack and killed the process."""
    code = ('import sys, json, mmkd_yolo\n'
            'assert sys.getrecursionlimit() < 2**20, sys.getrecursionlimit()\n'
            'try:\n    json.loads("[" * 200000)\nexcept RecursionError:\n    print("named")')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == 'named', (out.returncode, out.stderr)
    from mmkd_yolo.compat import ACTIVE_MEASURES, RECURSION_MEASURE
    assert RECURSION_MEASURE in ACTIVE_MEASURES
