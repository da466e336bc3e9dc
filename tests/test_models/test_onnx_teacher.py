"""OnnxTeacher: the records mmrazor's hooks would make, from an onnxruntime graph."""
import pytest
import torch
from mmrazor.models.task_modules.recorder import ModuleInputsRecorder, ModuleOutputsRecorder
from torch import nn

from mmkd_yolo.errors import ConfigError
from mmkd_yolo.models.onnx_teacher import OnnxTeacher


class TwoHeads(nn.Module):
    """A shared conv called twice, and a module returning a tuple of lists."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.shared = nn.Conv2d(4, 4, 3, padding=1)
        self.head = Head()

    def _forward(self, x):
        a = self.shared(self.stem(x))
        b = self.shared(torch.relu(a))
        return self.head(a + b)


class Head(nn.Module):

    def __init__(self):
        super().__init__()
        self.cls = nn.Conv2d(4, 2, 1)
        self.box = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return [self.cls(x)], [self.box(x), self.box(x * 2)]


def hook_records(model, recorders, x):
    """What mmrazor's own recorders hold after a PyTorch forward."""
    for recorder in recorders.values():
        recorder.initialize(model)
    for recorder in recorders.values():
        recorder.__enter__()
    with torch.no_grad():
        model._forward(x)
    for recorder in recorders.values():
        recorder.__exit__(None, None, None)
    return {name: rec.data_buffer for name, rec in recorders.items()}


def flat(record):
    if isinstance(record, torch.Tensor):
        return [record]
    return [t for item in record for t in flat(item)]


def test_records_match_mmrazor_hooks_calls_structure_and_shared_sources():
    """Per recorder one record per call (the shared conv: two), the head's tuple of lists
    rebuilt, two recorders on one module each get their own (not doubled) records; any
    batch and size."""
    model = TwoHeads().eval()
    names = {'shared': 'shared', 'head': 'head', 'head_again': 'head'}
    x = torch.randn(3, 3, 20, 28)
    expected = hook_records(model, {n: ModuleOutputsRecorder(s) for n, s in names.items()}, x)
    teacher = OnnxTeacher(model, {n: ModuleOutputsRecorder(s) for n, s in names.items()},
                          x[:1], num_threads=1)
    assert not model.training
    got = teacher(x)
    assert set(got) == set(names)
    assert len(got['shared']) == 2 and len(got['head']) == len(got['head_again']) == 1
    assert type(got['head'][0]) is tuple and [len(p) for p in got['head'][0]] == [1, 2]
    for name in names:
        assert len(flat(got[name])) == len(flat(expected[name]))
        for o, r in zip(flat(got[name]), flat(expected[name])):
            assert o.shape == r.shape and r.abs().max() > 0.1
            torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5)
    other = torch.randn(1, 3, 12, 16)  # another batch and size, the same graph
    assert got['shared'][0].shape[0] == 3 and teacher(other)['shared'][0].shape == (1, 4, 12, 16)


def test_input_recorders_are_refused_by_name():
    model = TwoHeads().eval()
    with pytest.raises(ConfigError, match=r"\['inputs'\] are \['ModuleInputsRecorder'\]"):
        OnnxTeacher(model, {'out': ModuleOutputsRecorder('head'),
                            'inputs': ModuleInputsRecorder('head')},
                    torch.randn(1, 3, 8, 8), num_threads=1)
