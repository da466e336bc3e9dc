"""Reduced precision for the frozen teacher's forward.

The teacher only ever runs inference, so it can run where the hardware is fastest:
bfloat16 on CPUs with native bf16 units (Intel AMX or AVX512-BF16), float16 (bfloat16
where supported) on CUDA. Measured on this project's 2-core Xeon with AMX (folded,
channels-last teacher, ``benchmarks/teacher_precision.py``): the YOLOv5-s forward at
320 px, batch 16, takes 372 ms in float32 and 121 ms in bfloat16, 1.7x less at batch 1,
and the official YOLOv5n scores 0.295 mAP on coco128 in bfloat16 against 0.294 in
float32. Without native units bfloat16 is emulated in software, so ``auto`` keeps
float32 there (not measured: this machine has the units). The distillation losses
still see float32: the records are cast back.
"""
from __future__ import annotations

import contextlib
import functools
from typing import ContextManager, Optional

import torch

from ..errors import ConfigError

#: The values of ``YOLOv5Distill(teacher_precision=...)`` and ``--t-precision``.
TEACHER_PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')
_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AMX or AVX512-BF16 flags)."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:  # not Linux: no way to tell cheaply, stay in float32
        return False
    return 'amx_bf16' in flags or 'avx512_bf16' in flags


def resolve_teacher_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of the teacher forward, or None for float32.

    Args:
        precision (str): One of :data:`TEACHER_PRECISIONS`. ``auto``: bfloat16 on CPUs
            with native bf16, float16 (bfloat16 if supported) on CUDA, else float32.
        device (torch.device): Where the teacher runs.

    Returns:
        torch.dtype | None: ``torch.bfloat16``, ``torch.float16`` or None (float32).
    """
    if precision not in TEACHER_PRECISIONS:
        raise ConfigError(f'teacher_precision={precision!r} is not one of '
                          f'{TEACHER_PRECISIONS} (--t-precision).')
    if precision == 'fp32':
        return None
    if precision == 'auto':
        if device.type == 'cuda':
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == 'cpu' and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if device.type == 'cpu' and precision == 'fp16':
        raise ConfigError('teacher_precision=fp16 is for CUDA; on CPU use bf16 or fp32.')
    return _DTYPES[precision]


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
