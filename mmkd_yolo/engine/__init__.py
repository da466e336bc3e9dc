from .atomic_local_backend import AtomicLocalBackend
from .yolov5_distill_optim_constructor import YOLOv5DistillOptimizerConstructor

__all__ = ['AtomicLocalBackend', 'YOLOv5DistillOptimizerConstructor']
