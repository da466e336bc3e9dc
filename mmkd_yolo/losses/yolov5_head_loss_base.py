"""What the YOLOv5 output-distillation losses share: the student head's part weights,
per-image weights, the shape check and mmyolo's batch scaling."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from mmengine.dist import get_world_size
from torch import Tensor, nn

from ..registry import MODELS

#: (cls_scores, bbox_preds, objectnesses), one tensor per level, as mmyolo's
#: ``YOLOv5HeadModule.forward`` returns them.
HeadOutputs = Tuple[Sequence[Tensor], Sequence[Tensor], Sequence[Tensor]]


def weighs_images(loss: Any) -> bool:
    """Whether a distillation loss weighs images (takes ``image_weights``, as every
    :class:`YOLOv5HeadLossBase` does): the one test of the default ``--unlabeled-weight``
    (on the config), of :class:`YOLOv5Distill`'s check of a weight given (on the built
    losses) and of who gets the weights each step.

    Args:
        loss: A built loss, or its config (a dict whose ``type`` is a class or a
            registered name, scoped or not).

    Returns:
        bool: False also for a type that is not registered.
    """
    if isinstance(loss, nn.Module):
        return isinstance(loss, YOLOv5HeadLossBase)
    loss_type = loss.get('type') if isinstance(loss, dict) else None
    if isinstance(loss_type, str):
        loss_type = MODELS.get(loss_type)
    return isinstance(loss_type, type) and issubclass(loss_type, YOLOv5HeadLossBase)


class YOLOv5HeadLossBase(nn.Module):
    """Base of the output-distillation losses (not registered: not a loss by itself).

    ``image_weights`` (None, or a tensor (N,)) weighs each image's share of the next
    forward's loss: :class:`~mmkd_yolo.algorithms.YOLOv5Distill` sets it for the call
    (``unlabeled_weight``) and clears it afterwards. Not a buffer: never saved.

    Args:
        loss_weight (float): Overall weight against the student loss.
        box_weight (float, optional): Weight of the box part. Defaults to the student's.
        obj_weight (float, optional): Weight of the objectness part. Defaults to the
            student's.
        cls_weight (float, optional): Weight of the class part. Defaults to the student's.
    """

    def __init__(self,
                 loss_weight: float,
                 box_weight: Optional[float] = None,
                 obj_weight: Optional[float] = None,
                 cls_weight: Optional[float] = None) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.box_weight = box_weight
        self.obj_weight = obj_weight
        self.cls_weight = cls_weight
        self.image_weights: Optional[Tensor] = None

    def inherit_head_weights(self, head: nn.Module) -> None:
        """Take unset part weights from an mmyolo ``YOLOv5Head``'s loss weights
        (Ultralytics' ``hyp['box'/'obj'/'cls']`` after scaling by levels, classes and
        image size); :class:`YOLOv5Distill` calls it with the student's head.

        Args:
            head (nn.Module): The student's ``bbox_head``.
        """
        if self.box_weight is None:
            self.box_weight = float(head.loss_bbox.loss_weight)
        if self.obj_weight is None:
            self.obj_weight = float(head.loss_obj.loss_weight)
        if self.cls_weight is None:
            self.cls_weight = float(head.loss_cls.loss_weight)

    def _check_ready(self) -> None:
        if None in (self.box_weight, self.obj_weight, self.cls_weight):
            raise RuntimeError(
                f'{type(self).__name__} has no head weights: build it inside YOLOv5Distill, '
                'which takes them from the student (or call '
                'inherit_head_weights(student.bbox_head)).')

    def _image_weights(self, num_images: int) -> Optional[Tensor]:
        """``image_weights`` as float32 (N,), checked against the batch; None if unset."""
        weights = self.image_weights
        if weights is None:
            return None
        if weights.shape != (num_images, ):
            raise ValueError(
                f'{type(self).__name__}.image_weights has shape {tuple(weights.shape)}, '
                f'but the batch has {num_images} images: give one weight per image.')
        return weights.detach().to(torch.float32)

    @staticmethod
    def _check_level(i: int, s_preds: HeadOutputs, t_preds: HeadOutputs) -> None:
        (s_cls, s_box, _), (t_cls, t_box, _) = s_preds, t_preds
        if t_box[i].shape != s_box[i].shape or t_cls[i].shape != s_cls[i].shape:
            raise ValueError(
                f'level {i}: student predictions {tuple(s_box[i].shape)}/'
                f'{tuple(s_cls[i].shape)} and teacher {tuple(t_box[i].shape)}/'
                f'{tuple(t_cls[i].shape)} differ; teacher and student need the same '
                'anchors, classes and strides.')

    def _scaled(self, l_box: Tensor, l_obj: Tensor, l_cls: Optional[Tensor],
                batch_size: int) -> Dict[str, Tensor]:
        """Part weights x ``loss_weight`` x batch size x world size (mmyolo's factor for
        the student loss); ``cls`` only when given (more than one class)."""
        scale = self.loss_weight * batch_size * get_world_size()
        losses = dict(box=l_box * self.box_weight * scale, obj=l_obj * self.obj_weight * scale)
        if l_cls is not None:
            losses['cls'] = l_cls * self.cls_weight * scale
        return losses
