from .stop_distill_hook import StopDistillLastEpochsHook
from .student_ema_hook import StudentEMAHook
from .yolov5_distill_optim_constructor import YOLOv5DistillOptimizerConstructor

__all__ = ['StopDistillLastEpochsHook', 'StudentEMAHook', 'YOLOv5DistillOptimizerConstructor']
