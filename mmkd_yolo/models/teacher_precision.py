"""Reduced precision for the frozen teacher's forward.

The teacher only ever runs inference, so it can run where the hardware is fastest:
bfloat16 on CPUs with native bf16 units (Intel AMX or AVX512-BF16), float16 (bfloat16
where supported) on CUDA. Measured (folded, channels-last teacher,
``benchmarks/teacher_precision.py``): the YOLOv5-s forward at 320 px, batch 16, takes
372 ms in float32 and 121 ms in bfloat16 on a 2-core Xeon with AMX, 423 and 203 ms on a
2-core EPYC with AVX512-BF16; the official YOLOv5n scores 0.295 mAP on coco128 in
bfloat16 against 0.294 in float32. Without native units bfloat16 is emulated in
software, so ``auto`` runs the teacher in onnxruntime there instead (``ort``: float32,
the same records as PyTorch's, a faster forward: :mod:`~mmkd_yolo.models.onnx_teacher`),
or PyTorch float32 if onnxruntime is missing. The distillation losses still see float32:
the records are cast back.
"""
from __future__ import annotations

import contextlib
import functools
from typing import ContextManager, Optional, Tuple

import torch

from ..errors import ConfigError

#: The values of ``YOLOv5Distill(teacher_precision=...)`` and ``--t-precision``; ``ort``:
#: onnxruntime in float32 (CPU; :class:`~mmkd_yolo.models.onnx_teacher.OnnxTeacher`).
TEACHER_PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16', 'ort')
AUTOCAST_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AMX or AVX512-BF16 flags)."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:  # not Linux: no way to tell cheaply, stay in float32
        return False
    return 'amx_bf16' in flags or 'avx512_bf16' in flags


def onnxruntime_available() -> bool:
    """Whether onnxruntime imports (a runtime requirement; absent only if removed)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def choose_teacher_runtime(precision: str, device: torch.device) -> Tuple[str, str]:
    """What runs the teacher forward on ``device``, and why (for the log).

    Args:
        precision (str): One of :data:`TEACHER_PRECISIONS`. ``auto``: on CUDA float16
            (bfloat16 where supported); on a CPU with native bf16 units bfloat16, on any
            other CPU onnxruntime (float32, same results as PyTorch's, faster), PyTorch
            float32 if onnxruntime is missing.
        device (torch.device): Where the teacher runs.

    Returns:
        tuple[str, str]: ``fp32``, ``bf16``, ``fp16`` or ``ort``, and the reason.
    """
    if precision not in TEACHER_PRECISIONS:
        raise ConfigError(f'teacher_precision={precision!r} is not one of '
                          f'{TEACHER_PRECISIONS} (--t-precision).')
    if precision != 'auto':
        if device.type == 'cpu' and precision == 'fp16':
            raise ConfigError('teacher_precision=fp16 is for CUDA; on CPU use bf16, ort '
                              'or fp32.')
        if device.type != 'cpu' and precision == 'ort':
            raise ConfigError(f"teacher_precision='ort' runs the teacher on the CPU; on "
                              f'{device.type} use fp16, bf16 or fp32.')
        if precision == 'ort' and not onnxruntime_available():
            raise ConfigError("teacher_precision='ort' needs onnxruntime: pip install "
                              'onnxruntime (a requirement of mmkd_yolo), or use fp32.')
        return precision, 'as set'
    if device.type == 'cuda':
        if torch.cuda.is_bf16_supported():
            return 'bf16', 'CUDA with bfloat16 support'
        return 'fp16', 'CUDA without bfloat16 support'
    if device.type != 'cpu':
        return 'fp32', f'no reduced precision chosen for {device.type}'
    if cpu_has_native_bf16():
        return 'bf16', 'the CPU computes bfloat16 natively (AMX / AVX512-BF16)'
    if onnxruntime_available():
        return 'ort', ('no native bfloat16 on this CPU: the float32 teacher in onnxruntime '
                       'rather than PyTorch (benchmarks/teacher_precision.py)')
    return 'fp32', 'no native bfloat16 on this CPU and onnxruntime is not installed'


def resolve_teacher_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of a PyTorch teacher forward, or None for float32.

    Args:
        precision (str): One of :data:`TEACHER_PRECISIONS` (see
            :func:`choose_teacher_runtime`; ``ort`` computes in float32: None).
        device (torch.device): Where the teacher runs.

    Returns:
        torch.dtype | None: ``torch.bfloat16``, ``torch.float16`` or None (float32).
    """
    return AUTOCAST_DTYPES.get(choose_teacher_runtime(precision, device)[0])


def teacher_autocast(dtype: Optional[torch.dtype], device: torch.device) -> ContextManager:
    """Autocast to ``dtype`` on ``device``'s type; a no-op for float32 (None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_float32(data):
    """Floating tensors (nested in lists/tuples) as float32, in the default memory format.

    Records of a channels-last or reduced-precision forward become what the losses
    expect (CWD ``view``s its inputs; the losses are computed in float32).
    """
    if isinstance(data, torch.Tensor):
        # one copy for both changes (dtype and memory format), none when neither applies
        dtype = torch.float32 if data.is_floating_point() else data.dtype
        return data.to(dtype=dtype, memory_format=torch.contiguous_format)
    if isinstance(data, (list, tuple)):
        return type(data)(to_float32(d) for d in data)
    return data
