"""mmyolo's YOLOv5 optimizer groups, over the trainable part of a distillation model."""
from __future__ import annotations

from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmyolo.engine.optimizers import YOLOv5OptimizerConstructor
from torch import nn

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class YOLOv5DistillOptimizerConstructor(YOLOv5OptimizerConstructor):
    """``YOLOv5OptimizerConstructor`` for :class:`YOLOv5Distill`: student and connectors.

    mmyolo's constructor walks ``model.modules()`` and would put the frozen teacher's
    weights into the optimizer (SGD skips them only because they never get a gradient;
    weight decay bookkeeping and the group counts in the log would still include them).
    This one hands it just the student and the distiller (whose connectors train), so the
    teacher is not in the optimizer at all. The three groups (conv weights with decay,
    norm weights, biases) are mmyolo's.

    Args: as ``YOLOv5OptimizerConstructor``.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if is_model_wrapper(model):
            model = model.module
        trainable = nn.ModuleDict(dict(student=model.student, distiller=model.distiller))
        return super().__call__(trainable)
