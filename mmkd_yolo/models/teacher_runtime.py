"""Running the frozen teacher's forward for its recorders, where ``teacher_precision`` says."""
from __future__ import annotations

from typing import Dict, Optional

import torch
from mmengine.device import get_device
from mmengine.logging import MMLogger
from mmrazor.models.task_modules.recorder import RecorderManager
from torch import nn

from .onnx_teacher import OnnxTeacher, check_recorders, unsupported_recorders
from .teacher_precision import (AUTOCAST_DTYPES, choose_teacher_runtime, teacher_autocast,
                                to_float32)


class TeacherRuntime:
    """The teacher forward in PyTorch (float32, bfloat16 or float16) or onnxruntime.

    What runs it is resolved once per device type, on the first forward there, and
    logged with the reason. A precision that cannot run where the Runner will put the
    model (``fp16`` without CUDA, ``ort`` on CUDA or without onnxruntime, ``ort`` with
    recorders it cannot serve) is refused here, when the model is built: inside
    ``build_runner``, whose config errors the tools report by name, not at the first
    training step.

    Args:
        teacher (nn.Module): The frozen teacher in eval mode (folded, channels-last).
        recorders (RecorderManager): The distiller's teacher recorders, filled by
            :meth:`forward` as their hooks would fill them.
        precision (str): ``teacher_precision``, one of
            :data:`~mmkd_yolo.models.teacher_precision.TEACHER_PRECISIONS`.
    """

    def __init__(self, teacher: nn.Module, recorders: RecorderManager, precision: str) -> None:
        choose_teacher_runtime(precision, torch.device(get_device()))
        if precision == 'ort':
            check_recorders(recorders.recorders)
        self.teacher = teacher
        self.recorders = recorders
        self.precision = precision
        self.runtimes: Dict[str, str] = {}  # per device type: fp32 / bf16 / fp16 / ort
        self.onnx: Optional[OnnxTeacher] = None  # built where it first runs

    def __getstate__(self) -> dict:
        """An onnxruntime session cannot be copied or pickled: a copy exports its own."""
        return dict(self.__dict__, onnx=None)

    def runtime_for(self, device: torch.device) -> str:
        """``teacher_precision`` resolved for ``device``: ``fp32``, ``bf16``, ``fp16`` or
        ``ort`` (logged with the reason the first time)."""
        if device.type in self.runtimes:
            return self.runtimes[device.type]
        runtime, why = choose_teacher_runtime(self.precision, device)
        unsupported = (unsupported_recorders(self.recorders.recorders)
                       if runtime == 'ort' else [])
        if unsupported:  # only under auto: 'ort' is checked at build
            runtime, why = 'fp32', (f'{why}; but teacher recorders {unsupported} are not '
                                    'module outputs, which onnxruntime cannot record')
        self.runtimes[device.type] = runtime
        what = ('onnxruntime, float32' if runtime == 'ort' else
                f'PyTorch, {AUTOCAST_DTYPES.get(runtime, torch.float32)}')
        where = device.type
        if torch.is_autocast_enabled(device.type):  # the optimizer wrapper's (--amp)
            outer = torch.get_autocast_dtype(device.type)
            where += (f', its own autocast in place of the training step\'s {outer} one'
                      if runtime in AUTOCAST_DTYPES else
                      f', outside the training step\'s {outer} autocast')
        MMLogger.get_current_instance().info(
            f'YOLOv5Distill: teacher forward in {what} on {where} '
            f'(teacher_precision={self.precision!r}: {why})')
        return runtime

    @torch.no_grad()
    def forward(self, batch_inputs: torch.Tensor) -> None:
        """Backbone + neck + head of the teacher, recorded by the teacher recorders.

        The teacher's weights are held in the runtime's dtype (cast on the first call:
        autocast would cast them on every forward otherwise, its weight cache only holds
        parameters that require grad). The records are left in float32 and the default
        memory format, as the losses expect them.

        Args:
            batch_inputs (Tensor): Preprocessed images, shape (N, 3, H, W).
        """
        device = batch_inputs.device
        runtime = self.runtime_for(device)
        dtype = AUTOCAST_DTYPES.get(runtime, torch.float32)
        if next(self.teacher.parameters()).dtype != dtype:
            self.teacher.to(dtype)
        if runtime == 'ort':
            if self.onnx is None:
                self.onnx = OnnxTeacher(self.teacher, self.recorders.recorders,
                                        batch_inputs[:1], torch.get_num_threads())
            records = self.onnx(batch_inputs)
            for name, recorder in self.recorders.recorders.items():
                recorder._data_buffer = records[name]
            return
        x = batch_inputs.to(dtype=dtype, memory_format=torch.channels_last)
        with self.recorders, teacher_autocast(runtime, device):
            self.teacher._forward(x)
        # float32 in the default memory format: losses such as CWD ``view`` the records
        for recorder in self.recorders.recorders.values():
            recorder._data_buffer = [to_float32(r) for r in recorder.data_buffer]
