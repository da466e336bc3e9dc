"""Teacher forward precision: choice by hardware, float32 records, close to float32."""
import pytest
import torch

from mmkd_yolo.errors import ConfigError
from mmkd_yolo.models import teacher_precision as tp

CPU = torch.device('cpu')


def test_resolve(monkeypatch):
    assert tp.resolve_teacher_precision('fp32', CPU) is None
    assert tp.resolve_teacher_precision('bf16', CPU) is torch.bfloat16
    assert tp.resolve_teacher_precision('ort', CPU) is None  # float32, outside PyTorch
    monkeypatch.setattr(tp, 'cpu_has_native_bf16', lambda: True)
    assert tp.resolve_teacher_precision('auto', CPU) is torch.bfloat16
    monkeypatch.setattr(tp, 'cpu_has_native_bf16', lambda: False)
    assert tp.resolve_teacher_precision('auto', CPU) is None  # onnxruntime's float32
    with pytest.raises(ConfigError, match='fp16 is for CUDA'):
        tp.resolve_teacher_precision('fp16', CPU)
    with pytest.raises(ConfigError, match='--t-precision'):
        tp.resolve_teacher_precision('int8', CPU)


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
