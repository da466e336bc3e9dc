from .curves_hook import CurvesHook
from .non_finite_loss_hook import NonFiniteLossHook
from .scaled_warmup_param_scheduler_hook import ScaledWarmupParamSchedulerHook
from .stop_distill_hook import StopDistillLastEpochsHook
from .student_ema_hook import StudentEMAHook
from .yolov5_distill_optim_constructor import YOLOv5DistillOptimizerConstructor

__all__ = ['CurvesHook', 'NonFiniteLossHook', 'ScaledWarmupParamSchedulerHook',
           'StopDistillLastEpochsHook', 'StudentEMAHook', 'YOLOv5DistillOptimizerConstructor']
