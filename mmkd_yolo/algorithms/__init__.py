from .yolov5_distill import YOLOv5Distill

__all__ = ['YOLOv5Distill']
