"""What runs the frozen teacher's forward: the choice per device, and its autocast.

The teacher only ever runs inference, so it can run where the hardware is fastest:
bfloat16 on CPUs with native bf16 units (Intel AMX or AVX512-BF16), on CUDA bfloat16
where the GPU computes it natively (compute capability 8.0 and up) and float16 on older
GPUs. Measured (folded, channels-last teacher, ``benchmarks/teacher_precision.py``): the
YOLOv5-s forward at 320 px, batch 16, takes 372 ms in float32 and 121 ms in bfloat16 on a
2-core Xeon with AMX, 423 and 203 ms on a 2-core EPYC with AVX512-BF16; the official
YOLOv5n scores 0.295 mAP on coco128 in bfloat16 against 0.294 in float32. Without native
units bfloat16 is emulated in software, so ``auto`` runs the teacher in onnxruntime on
such CPUs (``ort``: float32, the same records as PyTorch's, a faster forward:
:mod:`~mmkd_yolo.models.onnx_teacher`), or PyTorch float32 if onnxruntime is missing.
The distillation losses still see float32: the records are cast back.
"""
from __future__ import annotations

import functools
from typing import ContextManager, Tuple

import torch

from ..errors import ConfigError

#: The values of ``YOLOv5Distill(teacher_precision=...)`` and ``--t-precision``; ``ort``:
#: onnxruntime in float32 (CPU; :class:`~mmkd_yolo.models.onnx_teacher.OnnxTeacher`).
TEACHER_PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16', 'ort')
#: The runtimes that compute in reduced precision, and their dtype (the others: float32).
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


def _cuda_runtime(device: torch.device) -> Tuple[str, str]:
    """``auto`` on CUDA: bfloat16 where computed natively, else float16.

    ``torch.cuda.is_bf16_supported()`` also answers yes where bfloat16 is only emulated
    (T4, V100: since torch 2.4), which would give a slow teacher with bf16-rounded
    weights; ``including_emulation=False`` asks for native support only.
    """
    props = torch.cuda.get_device_properties(device)
    gpu = f'{props.name} (compute capability {props.major}.{props.minor})'
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return 'bf16', f'{gpu} computes bfloat16 natively'
    return 'fp16', (f'{gpu} has no native bfloat16 (emulated only, slower): float16, as '
                    '--amp uses')


def check_teacher_precision(precision: str) -> None:
    """Raise a ConfigError unless ``precision`` is one of :data:`TEACHER_PRECISIONS`."""
    if precision not in TEACHER_PRECISIONS:
        raise ConfigError(f'teacher_precision={precision!r} is not one of '
                          f'{TEACHER_PRECISIONS} (--t-precision).')


def choose_teacher_runtime(precision: str, device: torch.device) -> Tuple[str, str]:
    """What runs the teacher forward on ``device``, and why (for the log).

    Args:
        precision (str): One of :data:`TEACHER_PRECISIONS`. ``auto``: on CUDA bfloat16
            where the GPU computes it natively, else float16; on a CPU with native bf16
            units bfloat16, on any other CPU onnxruntime (float32, same results as
            PyTorch's, faster), PyTorch float32 if onnxruntime is missing.
        device (torch.device): Where the teacher runs.

    Returns:
        tuple[str, str]: ``fp32``, ``bf16``, ``fp16`` or ``ort``, and the reason.

    Raises:
        ConfigError: An unknown precision, or one that cannot run on ``device``.
    """
    check_teacher_precision(precision)
    if precision != 'auto':
        if device.type == 'cpu' and precision == 'fp16':
            raise ConfigError('teacher_precision=fp16 is for CUDA; on CPU use bf16, ort '
                              'or fp32 (--t-precision).')
        if device.type != 'cpu' and precision == 'ort':
            raise ConfigError(f"teacher_precision='ort' runs the teacher on the CPU; on "
                              f'{device.type} use fp16, bf16 or fp32 (--t-precision).')
        if precision == 'ort' and not onnxruntime_available():
            raise ConfigError("teacher_precision='ort' needs onnxruntime: pip install "
                              'onnxruntime (a requirement of mmkd_yolo), or use fp32.')
        return precision, 'as set'
    if device.type == 'cuda':
        return _cuda_runtime(device)
    if device.type != 'cpu':
        return 'fp32', f'no reduced precision chosen for {device.type}'
    if cpu_has_native_bf16():
        return 'bf16', 'the CPU computes bfloat16 natively (AMX / AVX512-BF16)'
    if onnxruntime_available():
        return 'ort', ('no native bfloat16 on this CPU: the float32 teacher in onnxruntime '
                       'rather than PyTorch (benchmarks/teacher_precision.py)')
    return 'fp32', 'no native bfloat16 on this CPU and onnxruntime is not installed'


def teacher_autocast(runtime: str, device: torch.device) -> ContextManager:
    """The autocast a PyTorch teacher forward of ``runtime`` runs under.

    ``bf16`` / ``fp16``: autocast to that dtype, whatever autocast encloses it. Any other
    (float32) runtime: autocast disabled, so that the optimizer wrapper's (``--amp``)
    does not run an fp32 teacher in float16.

    Args:
        runtime (str): What :func:`choose_teacher_runtime` chose.
        device (torch.device): Where the forward runs.
    """
    dtype = AUTOCAST_DTYPES.get(runtime)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


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
