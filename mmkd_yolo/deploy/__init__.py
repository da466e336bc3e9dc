from .onnx_export import OPSET, export_onnx, graph_signature, read_meta
from .onnx_nms import OnnxNonMaxSuppression
from .onnxruntime_detector import ONNXRuntimeDetector
from .yolov5_export_model import YOLOv5ExportModel

__all__ = ['OPSET', 'export_onnx', 'graph_signature', 'read_meta', 'OnnxNonMaxSuppression',
           'ONNXRuntimeDetector', 'YOLOv5ExportModel']
