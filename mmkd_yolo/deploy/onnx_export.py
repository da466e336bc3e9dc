"""Export an mmyolo YOLOv5 detector to ONNX and read back what was stored with it."""
from __future__ import annotations

import json
from typing import Dict, Optional

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from .yolov5_export_model import YOLOv5ExportModel

#: The ONNX opset of the exported graphs (NonMaxSuppression needs >= 11; 17 is what
#: onnxruntime >= 1.11 and TensorRT >= 8.5 run).
OPSET = 17
#: metadata_props key of what is stored in the file: JSON data (class names, graph
#: settings, the test protocol of :mod:`.protocol`), never code.
META_KEY = 'mmkd_yolo'


def export_onnx(detector: nn.Module, out: str, img_size: int = 640, batch: int = 1,
                dynamic: bool = False, nms: Optional[dict] = None,
                meta: Optional[dict] = None) -> Dict[str, list]:
    """Trace ``detector`` into ``out`` (checked by ``onnx.checker``).

    Args:
        detector (nn.Module): An mmyolo ``YOLODetector`` (YOLOv5 head), eval mode.
        out (str): The ``.onnx`` file to write.
        img_size (int): Input height and width (px, a multiple of 32).
        batch (int): Input batch size.
        dynamic (bool): Batch, height and width dynamic (``img_size`` is then only the
            tracing size).
        nms (dict, optional): End-to-end graph with ONNX NonMaxSuppression
            (``iou_threshold``, ``score_threshold``, ``max_per_class``).
        meta (dict, optional): JSON data stored in the file's metadata (``META_KEY``):
            class names, the test protocol.

    Returns:
        dict: ``inputs`` and ``outputs``, each a list of (name, shape) with dynamic
        dimensions named.
    """
    import onnx
    if img_size % 32:
        raise ConfigError(f'--img-size {img_size} is not a multiple of 32 (the largest '
                          'YOLOv5 stride).')
    model = YOLOv5ExportModel(detector.eval(), nms=nms).eval()
    images = torch.rand(batch, 3, img_size, img_size)
    output_names = ['detections'] if nms else ['boxes', 'scores']
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {'images': {0: 'batch', 2: 'height', 3: 'width'}}
        if nms:
            dynamic_axes['detections'] = {0: 'num_detections'}
        else:
            dynamic_axes.update(boxes={0: 'batch', 1: 'anchors'},
                                scores={0: 'batch', 1: 'anchors'})
    elif nms:
        dynamic_axes = {'detections': {0: 'num_detections'}}
    with torch.no_grad():
        # dynamo=False: the TorchScript exporter needs no onnxscript and traces the
        # NonMaxSuppression symbolic of OnnxNonMaxSuppression.
        torch.onnx.export(model, (images, ), out, input_names=['images'],
                          output_names=output_names, opset_version=OPSET,
                          dynamic_axes=dynamic_axes, do_constant_folding=True,
                          dynamo=False)
    proto = onnx.load(out)
    onnx.checker.check_model(proto)
    if meta is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        onnx.save(proto, out)
    return graph_signature(proto)


def graph_signature(proto) -> Dict[str, list]:
    """(name, shape) of a model's inputs and outputs, dynamic dimensions by name."""
    def shapes(values):
        return [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
                for v in values]
    return dict(inputs=shapes(proto.graph.input), outputs=shapes(proto.graph.output))


def read_meta(path: str) -> dict:
    """The ``META_KEY`` metadata of an exported file ({} if absent), read as JSON data
    (``json.loads``: nothing in it runs)."""
    import onnx
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001  (protobuf's errors have no common base)
        raise CheckpointError(f'{path!r} is not a readable ONNX file: {e}') from None
    for entry in proto.metadata_props:
        if entry.key == META_KEY:
            try:
                meta = json.loads(entry.value)
            except (ValueError, RecursionError) as e:  # also nested too deep
                raise CheckpointError(f'{path!r} carries malformed metadata '
                                      f'({type(e).__name__}: {str(e)[:200]}): refused.') from None
            if not isinstance(meta, dict):
                raise CheckpointError(f'{path!r} carries malformed metadata (not a '
                                      'mapping): refused.')
            return meta
    return {}
