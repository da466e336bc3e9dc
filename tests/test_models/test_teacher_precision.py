"""Teacher forward precision: choice by hardware, float32 records, close to float32."""
from types import SimpleNamespace

import pytest
import torch

from mmkd_yolo.errors import ConfigError
from mmkd_yolo.models import teacher_precision as tp

CPU = torch.device('cpu')


def test_runtime_and_its_autocast_dtype(monkeypatch):
    def dtype(precision):
        return tp.AUTOCAST_DTYPES.get(tp.choose_teacher_runtime(precision, CPU)[0])

    assert dtype('fp32') is None
    assert dtype('bf16') is torch.bfloat16
    assert dtype('ort') is None  # float32, outside PyTorch
    monkeypatch.setattr(tp, 'cpu_has_native_bf16', lambda: True)
    assert dtype('auto') is torch.bfloat16
    monkeypatch.setattr(tp, 'cpu_has_native_bf16', lambda: False)
    assert dtype('auto') is None  # onnxruntime's float32
    with pytest.raises(ConfigError, match='fp16 is for CUDA'):
        dtype('fp16')
    with pytest.raises(ConfigError, match='--t-precision'):
        dtype('int8')


def fake_gpu(monkeypatch, name: str, major: int, minor: int) -> None:
    """torch.cuda answering as on a machine with that GPU; bfloat16 tensors can be made
    on it (emulated below compute capability 8.0, as torch >= 2.4 reports)."""
    props = SimpleNamespace(name=name, major=major, minor=minor)
    monkeypatch.setattr(torch.version, 'hip', None)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    monkeypatch.setattr(torch.cuda, 'get_device_properties', lambda device=None: props)
    monkeypatch.setattr(torch.cuda, '_check_bf16_tensor_supported', lambda device: True)


@pytest.mark.parametrize('name,capability,runtime,why', [
    ('Tesla T4', (7, 5), 'fp16', 'Tesla T4 (compute capability 7.5) has no native bfloat16 '
     '(emulated only, slower): float16, as --amp uses'),
    ('Tesla V100-SXM2-16GB', (7, 0), 'fp16', 'Tesla V100-SXM2-16GB (compute capability 7.0) '
     'has no native bfloat16'),
    ('NVIDIA A100-SXM4-40GB', (8, 0), 'bf16', 'NVIDIA A100-SXM4-40GB (compute capability 8.0) '
     'computes bfloat16 natively'),
    ('NVIDIA H100 80GB HBM3', (9, 0), 'bf16', 'compute capability 9.0) computes bfloat16 '
     'natively'),
])
def test_auto_on_cuda_takes_bfloat16_only_where_native(monkeypatch, name, capability, runtime,
                                                       why):
    """torch.cuda.is_bf16_supported() says yes on a T4 or V100 too (emulated): auto must
    give them float16, and say which GPU and why."""
    fake_gpu(monkeypatch, name, *capability)
    assert torch.cuda.is_bf16_supported()  # the stack's answer, emulation included
    got, reason = tp.choose_teacher_runtime('auto', torch.device('cuda'))
    assert got == runtime and why in reason, reason


def test_float32_teacher_autocast_turns_an_enclosing_autocast_off():
    """--amp runs the training step under autocast: an fp32 (or ort) teacher must not run
    in it; a bf16 / fp16 teacher runs under its own dtype whatever encloses it."""
    conv = torch.nn.Conv2d(3, 8, 3)
    x = torch.randn(1, 3, 8, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        for runtime in ('fp32', 'ort'):
            with tp.teacher_autocast(runtime, CPU):
                assert not torch.is_autocast_enabled('cpu')
                assert conv(x).dtype == torch.float32
        assert torch.is_autocast_enabled('cpu')  # restored after
    with torch.autocast('cpu', enabled=False), tp.teacher_autocast('bf16', CPU):
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16
        assert conv(x).dtype == torch.bfloat16


def test_auto_runtime_per_cpu_with_its_reason(monkeypatch):
    """auto: bf16 where the CPU has the units, else onnxruntime, else PyTorch float32;
    each with the reason the log gives. ort is for CPUs only."""
    monkeypatch.setattr(tp, 'cpu_has_native_bf16', lambda: True)
    assert tp.choose_teacher_runtime('auto', CPU) == (
        'bf16', 'the CPU computes bfloat16 natively (AMX / AVX512-BF16)')
    monkeypatch.setattr(tp, 'cpu_has_native_bf16', lambda: False)
    runtime, why = tp.choose_teacher_runtime('auto', CPU)
    assert runtime == 'ort' and 'no native bfloat16' in why and 'onnxruntime' in why
    assert tp.choose_teacher_runtime('ort', CPU) == ('ort', 'as set')
    monkeypatch.setattr(tp, 'onnxruntime_available', lambda: False)
    assert tp.choose_teacher_runtime('auto', CPU) == (
        'fp32', 'no native bfloat16 on this CPU and onnxruntime is not installed')
    with pytest.raises(ConfigError, match="'ort' needs onnxruntime: pip install"):
        tp.choose_teacher_runtime('ort', CPU)
    with pytest.raises(ConfigError, match="'ort' runs the teacher on the CPU"):
        tp.choose_teacher_runtime('ort', torch.device('cuda'))


def test_to_float32_nested_and_contiguous():
    x = torch.randn(2, 3, 4, 4).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    out = tp.to_float32(([x], (x, torch.tensor([1]))))
    assert out[0][0].dtype == torch.float32 and out[0][0].is_contiguous()
    assert out[1][1].dtype == torch.int64
