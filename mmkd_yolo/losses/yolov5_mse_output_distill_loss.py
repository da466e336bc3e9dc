"""The raw-MSE output distillation of the YOLOv5 distillation scripts, for comparison."""
from __future__ import annotations

from typing import Dict, Optional

from torch import Tensor

from ..registry import MODELS
from .yolov5_head_loss_base import HeadOutputs, YOLOv5HeadLossBase


@MODELS.register_module()
class YOLOv5MSEOutputDistillLoss(YOLOv5HeadLossBase):
    """Output distillation of the YOLOv5 distillation scripts
    (``compute_distillation_output_loss``, after `Hinton et al., Distilling the
    Knowledge in a Neural Network <https://arxiv.org/abs/1503.02531>`_), on mmyolo heads.

    Per detection level ``i``, on the raw predictions (before sigmoid) of student ``s``
    and teacher ``t``, with ``w = sigmoid(t_obj)``::

        L_box = mean((s_xywh - t_xywh)^2 * w)
        L_obj = mean((s_obj - t_obj)^2 * w)
        L_cls = mean((s_cls - t_cls)^2 * w)      # only when num_classes > 1

    Each part is summed over levels and multiplied by its weight, by ``loss_weight`` and by
    ``batch_size * world_size``. That last factor is the one mmyolo's ``YOLOv5Head``
    applies to the student loss (as Ultralytics does), so ``loss_weight=10`` keeps the
    reference recipe's balance ``loss = s_loss + 10 * d_loss`` with ``d_loss`` scaled by
    the batch size. The part weights default to the student head's own
    ``loss_bbox / loss_obj / loss_cls`` weights (mmyolo's equivalent of Ultralytics'
    ``hyp['box'/'obj'/'cls']`` after their scaling by levels, classes and image size);
    :class:`YOLOv5Distill` fills them in from the student. With ``image_weights`` (N,)
    set (:class:`YOLOv5Distill`'s ``unlabeled_weight``), ``w`` of image ``n`` is
    multiplied by its weight: the means still divide by every element, so an image of
    weight 2 counts as two.

    Kept to compare against, not as a default: squared differences of raw logits are
    unbounded, and on real data with a pretrained student this loss at the scripts'
    weight drives the student's mAP to zero (docs/en/benchmarks/gain.md). The default is the
    bounded :class:`YOLOv5OutputDistillLoss`.

    Args:
        loss_weight (float): Overall weight (the scripts' ``d_weight``). Defaults to 10.
        box_weight (float, optional): Weight of ``L_box``. Defaults to the student's.
        obj_weight (float, optional): Weight of ``L_obj``. Defaults to the student's.
        cls_weight (float, optional): Weight of ``L_cls``. Defaults to the student's.
    """

    def __init__(self,
                 loss_weight: float = 10.0,
                 box_weight: Optional[float] = None,
                 obj_weight: Optional[float] = None,
                 cls_weight: Optional[float] = None) -> None:
        super().__init__(loss_weight, box_weight, obj_weight, cls_weight)

    def forward(self, s_preds: HeadOutputs, t_preds: HeadOutputs) -> Dict[str, Tensor]:
        """Compute the loss parts.

        Args:
            s_preds (tuple): Student ``(cls_scores, bbox_preds, objectnesses)``; level
                ``i`` has shapes (N, A * nc, H_i, W_i), (N, A * 4, H_i, W_i) and
                (N, A, H_i, W_i), A being the number of anchors per cell.
            t_preds (tuple): Teacher predictions, same shapes.

        Returns:
            dict[str, Tensor]: ``box``, ``obj`` and (when nc > 1) ``cls``, each a scalar.
        """
        self._check_ready()
        s_cls, s_box, s_obj = s_preds
        t_cls, t_box, t_obj = t_preds
        zero = s_box[0].new_zeros(())
        l_box, l_obj, l_cls = zero, zero, zero
        multi_class = True
        image_weights = self._image_weights(s_box[0].shape[0])
        for i in range(len(s_box)):
            self._check_level(i, s_preds, t_preds)
            n, a, h, w = s_obj[i].shape
            nc = s_cls[i].shape[1] // a
            multi_class = nc > 1
            weight = t_obj[i].detach().sigmoid().view(n, a, 1, h, w)
            if image_weights is not None:
                weight = weight * image_weights.to(weight.dtype).view(n, 1, 1, 1, 1)
            l_box = l_box + (((s_box[i] - t_box[i].detach())**2).view(n, a, 4, h, w) *
                             weight).mean()
            l_obj = l_obj + ((s_obj[i] - t_obj[i].detach())**2 * weight.view(n, a, h, w)).mean()
            if multi_class:
                l_cls = l_cls + (((s_cls[i] - t_cls[i].detach())**2).view(n, a, nc, h, w) *
                                 weight).mean()
        return self._scaled(l_box, l_obj, l_cls if multi_class else None, s_box[0].shape[0])
