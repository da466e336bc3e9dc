from .yolov5_distill_optim_constructor import YOLOv5DistillOptimizerConstructor

__all__ = ['YOLOv5DistillOptimizerConstructor']
