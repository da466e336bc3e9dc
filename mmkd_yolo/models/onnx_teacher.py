"""The frozen teacher's recorded outputs computed by onnxruntime (``teacher_precision='ort'``).

The teacher never trains, so it can run in an inference runtime. On CPUs without native
bfloat16 units PyTorch's float32 forward is all that is left in PyTorch; onnxruntime runs
the same graph in float32 with the same results, faster: 1.04x-1.26x at batch 16 on this
project's AVX512 CPU (``benchmarks/teacher_precision.py --time-only``), 262 -> 183 ms on
an AVX2-only one (the measurement that asked for it). mmrazor's recorders are forward hooks
on PyTorch modules, which an onnxruntime graph has none of; so the graph is exported with
the recorded modules' outputs as its outputs, and its results are put into the recorders'
buffers, as the hooks would have.
"""
from __future__ import annotations

import io
import time
from typing import Any, Dict, List, Tuple

import torch
from mmengine.logging import MMLogger
from mmrazor.models.task_modules.recorder import ModuleOutputsRecorder
from mmrazor.models.task_modules.recorder.base_recorder import BaseRecorder
from torch import nn

from ..errors import ConfigError

#: The ONNX opset of the teacher graph (the deploy exporter's).
OPSET = 17


def _flatten(data: Any) -> Tuple[List[torch.Tensor], Any]:
    """Tensors of nested tuples/lists, and the structure to rebuild them with."""
    if isinstance(data, torch.Tensor):
        return [data], None
    if isinstance(data, (tuple, list)):
        tensors, specs = [], []
        for item in data:
            item_tensors, spec = _flatten(item)
            tensors += item_tensors
            specs.append((len(item_tensors), spec))
        return tensors, (type(data), specs)
    raise ConfigError(f'a teacher record of type {type(data).__name__}: '
                      "teacher_precision='ort' records tensors (or tuples/lists of them).")


def unsupported_recorders(recorders: Dict[str, BaseRecorder]) -> List[str]:
    """Names of the recorders the exported graph cannot serve (all but module outputs;
    exactly ``ModuleOutputsRecorder``: mmrazor's ``ModuleInputsRecorder`` subclasses it)."""
    return [name for name, rec in recorders.items() if type(rec) is not ModuleOutputsRecorder]


def _unflatten(tensors: List[torch.Tensor], spec: Any) -> Any:
    """The inverse of :func:`_flatten`: ``tensors`` rebuilt into the structure ``spec``."""
    if spec is None:
        return tensors[0]
    kind, specs = spec
    items, start = [], 0
    for count, item_spec in specs:
        items.append(_unflatten(tensors[start:start + count], item_spec))
        start += count
    return kind(items)


class _RecordedOutputs(nn.Module):
    """The teacher's forward, returning what the recorders would record, flattened."""

    def __init__(self, teacher: nn.Module, sources: List[str]) -> None:
        super().__init__()
        self.teacher = teacher
        self.sources = sources
        self.specs: List[Any] = []

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        modules = dict(self.teacher.named_modules())
        calls: Dict[str, list] = {source: [] for source in self.sources}
        handles = [  # one hook per module, however many recorders share it
            modules[source].register_forward_hook(
                lambda module, args, out, source=source: calls[source].append(out))
            for source in calls
        ]
        try:
            self.teacher._forward(x)
        finally:
            for handle in handles:
                handle.remove()
        flat, self.specs = [], []
        for source in self.sources:
            tensors, spec = _flatten(calls[source])
            flat += tensors
            self.specs.append((len(tensors), spec))
        return tuple(flat)


def session_options(num_threads: int):
    """onnxruntime options for a teacher that shares the cores with the training step.

    Args:
        num_threads (int): Intra-op threads.

    Returns:
        onnxruntime.SessionOptions
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    # No busy-waiting between runs: the student's forward and backward need the cores
    # right after the teacher's, and spinning threads would hold them.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    # No memory pattern: planned per input shape, it reserves one block for every
    # intermediate at once; the arena alone reuses its buffers and peaks lower, as fast
    options.enable_mem_pattern = False
    return options


def check_recorders(recorders: Dict[str, BaseRecorder]) -> None:
    """Raise a ConfigError naming the recorders the exported graph cannot serve."""
    unsupported = unsupported_recorders(recorders)
    if unsupported:
        raise ConfigError(
            f"teacher_precision='ort' runs the teacher outside PyTorch and records "
            f'module outputs only; teacher recorders {unsupported} are '
            f"{[type(recorders[n]).__name__ for n in unsupported]}. Use "
            "--t-precision fp32 (or bf16) with these recorders.")


def export_recorded_graph(teacher: nn.Module, sources: List[str],
                          example: torch.Tensor) -> Tuple[bytes, List[Any]]:
    """The teacher's ONNX graph whose outputs are what recorders of ``sources`` record.

    Args:
        teacher (nn.Module): The teacher, in float32.
        sources (list[str]): Module names, one per recorder.
        example (Tensor): An input batch, shape (N, 3, H, W); batch, height and width
            are dynamic in the graph.

    Returns:
        tuple[bytes, list]: The serialized graph, and per source the number of its
        flattened outputs and the structure to rebuild them with.
    """
    # eval(): the exporter restores the wrapper's mode afterwards, and a new module's
    # is training, which would set the teacher training as well
    wrapper = _RecordedOutputs(teacher, sources).eval()
    graph = io.BytesIO()
    with torch.no_grad():
        # dynamo=False: the TorchScript exporter, as the deploy exporter uses
        torch.onnx.export(wrapper, (example.float().contiguous(), ), graph,
                          input_names=['images'], opset_version=OPSET,
                          dynamic_axes={'images': {0: 'batch', 2: 'height', 3: 'width'}},
                          do_constant_folding=True, dynamo=False)
    return graph.getvalue(), wrapper.specs


class OnnxTeacher:
    """The teacher exported to ONNX (batch, height and width dynamic), run by onnxruntime.

    Args:
        teacher (nn.Module): The teacher, in float32 and eval mode.
        recorders (dict[str, BaseRecorder]): The distiller's teacher recorders (mmrazor's
            ``ModuleOutputs`` only: an input recorder would need the graph cut elsewhere).
        example (Tensor): An input batch, shape (N, 3, H, W), for the export.
        num_threads (int): onnxruntime's intra-op threads (PyTorch's count).
    """

    def __init__(self, teacher: nn.Module, recorders: Dict[str, BaseRecorder],
                 example: torch.Tensor, num_threads: int) -> None:
        import onnxruntime as ort
        check_recorders(recorders)
        self.names = list(recorders)
        start = time.perf_counter()
        graph, self.specs = export_recorded_graph(
            teacher, [recorders[n].source for n in self.names], example)
        self.session = ort.InferenceSession(graph, session_options(num_threads),
                                            providers=['CPUExecutionProvider'])
        MMLogger.get_current_instance().info(
            f'YOLOv5Distill: teacher exported to ONNX for onnxruntime {ort.__version__} '
            f'({len(self.session.get_outputs())} outputs for recorders {self.names}, '
            f'{num_threads} threads) in {time.perf_counter() - start:.1f} s')

    def __call__(self, batch_inputs: torch.Tensor) -> Dict[str, list]:
        """Run the teacher; its records as the recorders' data buffers would hold them.

        Args:
            batch_inputs (Tensor): Preprocessed images, shape (N, 3, H, W), on the CPU.

        Returns:
            dict[str, list]: Per recorder name, one record per call of its module (float32
            tensors in the default memory format, as the losses expect).
        """
        images = batch_inputs.detach().float().contiguous().numpy()
        outputs = [torch.from_numpy(o) for o in self.session.run(None, {'images': images})]
        records, start = {}, 0
        for name, (count, spec) in zip(self.names, self.specs):
            records[name] = _unflatten(outputs[start:start + count], spec)
            start += count
        return records
