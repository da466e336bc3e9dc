from .stop_distill_hook import StopDistillLastEpochsHook
from .yolov5_distill_optim_constructor import YOLOv5DistillOptimizerConstructor

__all__ = ['StopDistillLastEpochsHook', 'YOLOv5DistillOptimizerConstructor']
