"""Bounded, teacher-confidence-weighted output distillation for YOLOv5 heads."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmyolo.models.losses import bbox_overlaps
from torch import Tensor, nn

from ..registry import MODELS
from .yolov5_head_loss_base import HeadOutputs, YOLOv5HeadLossBase


class _BernoulliKL(torch.autograd.Function):
    """``softplus(s) - softplus(t) - sigmoid(t) * (s - t)`` with its gradient
    ``sigmoid(s) - sigmoid(t)`` written out: autograd through two BCEs keeps several
    intermediates of the size of the class logits (batch x anchors x classes) for the
    backward pass; this keeps the two inputs only and computes the gradient in two ops."""

    @staticmethod
    def forward(ctx, s: Tensor, t: Tensor) -> Tensor:
        p_t = t.sigmoid()
        ctx.save_for_backward(s, p_t)
        return F.softplus(s) - F.softplus(t) - p_t * (s - t)

    @staticmethod
    def backward(ctx, grad: Tensor):
        s, p_t = ctx.saved_tensors
        return grad * (s.sigmoid() - p_t), None


def bernoulli_kl(s_logits: Tensor, t_logits: Tensor, tau: float = 1.0) -> Tensor:
    """Element-wise KL(teacher || student) of independent Bernoulli outputs.

    Equal to BCE(s, sigmoid(t)) minus the teacher's entropy, in closed form
    ``softplus(s) - softplus(t) - sigmoid(t) * (s - t)`` (logits divided by ``tau``): the
    same gradient as BCE against the teacher's probability,
    ``(sigmoid(s / tau) - sigmoid(t / tau)) / tau``, bounded by ``1 / tau`` per logit, and
    zero where student and teacher agree.

    Args:
        s_logits (Tensor): Student logits, any shape.
        t_logits (Tensor): Teacher logits, same shape (not differentiated).
        tau (float): Temperature.

    Returns:
        Tensor: Same shape as the inputs, non-negative.
    """
    s, t = s_logits / tau, t_logits.detach() / tau
    return _BernoulliKL.apply(s, t)


def decode_xywh(bbox_pred: Tensor, priors: Tensor) -> Tensor:
    """YOLOv5's box decoding in grid units, as mmyolo's ``YOLOv5Head`` does in its loss.

    Args:
        bbox_pred (Tensor): Raw box outputs, shape (N, A, 4, H, W).
        priors (Tensor): Anchor sizes in grid units of this level, shape (A, 2).

    Returns:
        Tensor: (x, y, w, h) relative to the cell, shape (N, A, H, W, 4).
    """
    p = bbox_pred.permute(0, 1, 3, 4, 2).sigmoid()
    xy = p[..., :2] * 2 - 0.5
    wh = (p[..., 2:] * 2)**2 * priors[None, :, None, None, :]
    return torch.cat((xy, wh), dim=-1)


@MODELS.register_module()
class YOLOv5OutputDistillLoss(YOLOv5HeadLossBase):
    """YOLOv5's own detection loss with the teacher's predictions as soft targets.

    The raw-MSE loss of the YOLOv5 distillation scripts
    (:class:`YOLOv5MSEOutputDistillLoss`) squares differences of raw logits summed over
    every class and cell: unbounded, and with a pretrained student it swamps the
    detection loss and wrecks the student (see the README's gain study). This loss keeps
    the scripts' teacher-objectness weighting but gives every part the form and scale of
    mmyolo's ``YOLOv5Head.loss_by_feat``, so ``loss_weight=1`` weighs distillation like
    the ground truth. Per level ``i``, with ``w = sigmoid(t_obj)`` (the teacher's
    confidence that an anchor holds an object)::

        L_obj = mean over all anchors of KL(sigmoid(t_obj) || sigmoid(s_obj)) * obj_level_weight_i
        L_cls = sum(w * mean_c KL(sigmoid(t_cls) || sigmoid(s_cls))) / max(sum(w), 1)
        L_box = sum(w * (1 - CIoU(decode(s_box), decode(t_box)))) / max(sum(w), 1)

    (KL of Bernoulli outputs: BCE against the teacher's probability minus its entropy,
    see :func:`bernoulli_kl`; boxes decoded as the YOLOv5 head decodes them, in grid units
    of their anchors.) Every gradient is bounded: at most ``1 / tau`` per logit for obj and
    cls, and CIoU's for boxes. The parts are summed over levels, multiplied by the student
    head's ``loss_obj / loss_cls / loss_bbox`` weights, by ``loss_weight`` and by batch
    size x world size, the factor mmyolo applies to the student loss.

    Args:
        loss_weight (float): Overall weight against the student loss. Defaults to 1.
        tau (float): Temperature of the obj and cls KL (multiplied back by ``tau**2``).
            Defaults to 1.
        box_weight (float, optional): Weight of ``L_box``. Defaults to the student's.
        obj_weight (float, optional): Weight of ``L_obj``. Defaults to the student's.
        cls_weight (float, optional): Weight of ``L_cls``. Defaults to the student's.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 tau: float = 1.0,
                 box_weight: Optional[float] = None,
                 obj_weight: Optional[float] = None,
                 cls_weight: Optional[float] = None) -> None:
        super().__init__(loss_weight, box_weight, obj_weight, cls_weight)
        self.tau = tau
        self.obj_level_weights: Optional[Sequence[float]] = None
        self.register_buffer('priors', None, persistent=False)

    def inherit_head_weights(self, head: nn.Module) -> None:
        """Take the student ``YOLOv5Head``'s loss weights, level weights and anchors.

        Args:
            head (nn.Module): The student's ``bbox_head``.
        """
        super().inherit_head_weights(head)
        self.obj_level_weights = list(head.obj_level_weights)
        # anchor sizes in grid units of each level, shape (num_levels, A, 2)
        self.priors = head.priors_base_sizes.detach().clone()

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
        if self.priors is None:
            raise RuntimeError(
                'YOLOv5OutputDistillLoss has no anchors: build it inside YOLOv5Distill, '
                'which takes them from the student (or call '
                'inherit_head_weights(student.bbox_head)).')
        s_cls, s_box, s_obj = s_preds
        t_cls, t_box, t_obj = t_preds
        zero = s_box[0].new_zeros(())
        l_box, l_obj, l_cls = zero, zero, zero
        multi_class = True
        for i in range(len(s_box)):
            self._check_level(i, s_preds, t_preds)
            n, a, h, w = s_obj[i].shape
            # in float32 also under autocast: sigmoid/KL of half-precision logits lose
            # the small differences this loss is about
            s_obj_i, t_obj_i = s_obj[i].float(), t_obj[i].detach().float()
            weight = t_obj_i.sigmoid()  # (N, A, H, W)
            norm = weight.sum().clamp(min=1.0)
            l_obj = l_obj + bernoulli_kl(s_obj_i, t_obj_i, self.tau).mean() * (
                self.obj_level_weights[i] * self.tau**2)

            s_xywh = decode_xywh(s_box[i].float().view(n, a, 4, h, w), self.priors[i])
            t_xywh = decode_xywh(t_box[i].detach().float().view(n, a, 4, h, w),
                                 self.priors[i])
            ciou = bbox_overlaps(s_xywh.reshape(-1, 4), t_xywh.reshape(-1, 4),
                                 iou_mode='ciou', bbox_format='xywh')
            l_box = l_box + ((1.0 - ciou) * weight.reshape(-1)).sum() / norm

            nc = s_cls[i].shape[1] // a
            multi_class = nc > 1
            if multi_class:
                kl = bernoulli_kl(s_cls[i].float().view(n, a, nc, h, w),
                                  t_cls[i].detach().float().view(n, a, nc, h, w), self.tau)
                l_cls = l_cls + (kl.mean(dim=2) * weight).sum() / norm * self.tau**2
        return self._scaled(l_box, l_obj, l_cls if multi_class else None, s_box[0].shape[0])
