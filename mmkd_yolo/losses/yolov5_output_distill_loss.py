"""Bounded, teacher-confidence-weighted output distillation for YOLOv5 heads."""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..registry import MODELS
from .yolov5_head_loss_base import HeadOutputs, YOLOv5HeadLossBase


#: Logits are clamped from below here for the loss value: ``sigmoid(-80)`` is 1.8e-35,
#: still a normal float32, so ``log(sigmoid)`` stays finite; the gradient is unaffected
#: (``sigmoid`` of anything below is 0 to float precision).
_MIN_LOGIT = -80.0


def _scaled_copy(x: Tensor, tau: float) -> Tensor:
    """A new tensor ``max(x / tau, _MIN_LOGIT)``, in one pass when ``tau`` is 1."""
    if tau == 1.0:
        return x.clamp(min=_MIN_LOGIT)
    return (x / tau).clamp_(min=_MIN_LOGIT)


class _WeightedBernoulliKL(torch.autograd.Function):
    """``sum(weight * KL(sigmoid(t) || sigmoid(s)))`` with its gradient computed alongside,
    image by image.

    With ``p = sigmoid(t)`` and ``q = sigmoid(s)`` (logits divided by ``tau``), the KL of
    the Bernoulli outputs is ``(1 - p) * (s - t) + log(p / q)`` (the usual
    ``softplus(s) - softplus(t) - p * (s - t)``, as ``softplus(x) = x - log(sigmoid(x))``)
    and its gradient ``(q - p) / tau``: three transcendental passes (two sigmoids, one
    log) for value and gradient together, where autograd through the element-wise form
    makes seven and keeps intermediates the size of the class logits (batch x anchors x
    classes x cells: 6 million floats at level 0 of an 80-class YOLOv5 at 320 px) for
    the backward pass. Here the gradient is the one tensor kept and the temporaries are
    one image's (``benchmarks/kd_speed.py --loss``). ``torch.compile`` of the same
    expression was tried: a faster loss, but not a faster training loop on 2 cores, and
    40-90 MiB more peak memory (the compiler lives in the training process); not used.
    """

    @staticmethod
    def forward(ctx, s: Tensor, t: Tensor, weight: Optional[Tensor], tau: float,
                image_weights: Optional[Sequence[float]]) -> Tensor:
        total = s.new_zeros(())
        grad_s = torch.empty_like(s)
        # an image's weight scales its sum and gradient; images of weight 1 (and all
        # without image_weights) take the unweighted steps, to the bit. Python floats,
        # not a tensor: reading a GPU tensor's values waits for the device, so the
        # caller reads them once per loss, not once per level and part
        scales = [1.0] * s.shape[0] if image_weights is None else image_weights
        # no autocast (--amp): it would run the weighted sum (a matmul) in half precision
        with torch.autocast(device_type=s.device.type, enabled=False):
            for i, scale in enumerate(scales):
                s_i, t_i = _scaled_copy(s[i], tau), _scaled_copy(t[i], tau)
                p = t_i.sigmoid()
                q = torch.sigmoid(s_i, out=grad_s[i])
                kl = torch.div(p, q).log_()
                diff = s_i.sub_(t_i)
                kl.add_(diff).addcmul_(diff, p, value=-1)  # + (1 - p) * (s - t)
                q.sub_(p)
                if weight is None:
                    part = kl.sum()
                    if scale == 1.0:
                        q.div_(tau)
                    else:
                        q.mul_(scale / tau)
                else:  # (A, C, L) @ (A, L, 1): the weighted sum in one pass
                    part = torch.matmul(kl, weight[i].transpose(-1, -2)).sum()
                    q.mul_(weight[i] / tau if scale == 1.0 else weight[i] * (scale / tau))
                total += part if scale == 1.0 else part * scale
        ctx.save_for_backward(grad_s)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        # in place: a second backward through the same graph fails on autograd's own
        # version check of the saved tensor instead of returning a wrong gradient
        grad_s, = ctx.saved_tensors
        return grad_s.mul_(grad), None, None, None, None


def weighted_bernoulli_kl(s_logits: Tensor,
                          t_logits: Tensor,
                          weight: Optional[Tensor] = None,
                          tau: float = 1.0,
                          image_weights: Optional[Union[Tensor, Sequence[float]]] = None
                          ) -> Tensor:
    """Weighted sum of the KL(teacher || student) of independent Bernoulli outputs.

    Per element, in closed form with logits divided by ``tau``,
    ``KL = softplus(s) - softplus(t) - sigmoid(t) * (s - t)``: BCE(s, sigmoid(t)) minus the
    teacher's entropy, so the same gradient as BCE against the teacher's probability,
    ``(sigmoid(s / tau) - sigmoid(t / tau)) / tau``, bounded by ``1 / tau`` per logit, and
    zero where student and teacher agree.

    Args:
        s_logits (Tensor): Student logits, shape (N, A, C, L) (batch, anchors, classes,
            cells).
        t_logits (Tensor): Teacher logits, same shape (not differentiated).
        weight (Tensor, optional): Per-cell weights, shape (N, A, 1, L), shared by the C
            outputs of a cell (not differentiated). Defaults to None (all ones).
        tau (float): Temperature.
        image_weights (Tensor | Sequence[float], optional): Per-image factors, N of them,
            on top of ``weight`` (not differentiated); a sequence of floats spares a
            caller with several calls reading a device tensor each time. Defaults to None
            (all ones).

    Returns:
        Tensor: A non-negative scalar.
    """
    if weight is not None:
        weight = weight.detach()
    if isinstance(image_weights, Tensor):
        image_weights = image_weights.tolist()
    return _WeightedBernoulliKL.apply(s_logits.contiguous(), t_logits.detach().contiguous(),
                                      weight, tau, image_weights)


def decode_xywh(bbox_pred: Tensor, priors: Tensor) -> Tuple[Tensor, ...]:
    """YOLOv5's box decoding in grid units, as mmyolo's ``YOLOv5Head`` does in its loss.

    Args:
        bbox_pred (Tensor): Raw box outputs, shape (N, A, 4, H, W).
        priors (Tensor): Anchor sizes in grid units of this level, shape (A, 2).

    Returns:
        tuple[Tensor]: x, y (relative to the cell), w, h, each of shape (N, A, H, W)
        (one tensor per coordinate, so that the element-wise IoU below runs over
        contiguous rows).
    """
    p = bbox_pred.sigmoid()
    x, y = (p[:, :, 0] * 2 - 0.5), (p[:, :, 1] * 2 - 0.5)
    w = (p[:, :, 2] * 2)**2 * priors[None, :, 0, None, None]
    h = (p[:, :, 3] * 2)**2 * priors[None, :, 1, None, None]
    return x, y, w, h


def ciou_xywh(pred: Sequence[Tensor], target: Sequence[Tensor], eps: float = 1e-7) -> Tensor:
    """mmyolo's CIoU (``bbox_overlaps(..., iou_mode='ciou', bbox_format='xywh')``, the
    YOLOv5 form of alpha) for boxes given coordinate by coordinate.

    mmyolo's takes (M, 4) boxes and works on their columns: strided views, and every one
    of its ~50 element-wise steps (and their backward) makes a pass with stride 4. Over
    all anchors of all levels (130 000 boxes at 320 px, batch 16) that made the box part
    as slow as the class part of this loss. Here each coordinate is a contiguous-row
    tensor, and the target's own terms are computed without autograd.

    Args:
        pred (Sequence[Tensor]): x, y, w, h of the predicted boxes, each of shape (*).
        target (Sequence[Tensor]): x, y, w, h of the target boxes (not differentiated).
        eps (float): As mmyolo's. Defaults to 1e-7.

    Returns:
        Tensor: CIoU, shape (*).
    """
    px, py, pw, ph = pred
    with torch.no_grad():
        tx, ty, tw, th = (c.detach() for c in target)
        t_x1, t_x2, t_y1, t_y2 = tx - tw / 2, tx + tw / 2, ty - th / 2, ty + th / 2
        t_area = (t_x2 - t_x1) * (t_y2 - t_y1)
        t_atan = torch.atan((t_x2 - t_x1) / (t_y2 - t_y1 + eps))
    p_x1, p_x2, p_y1, p_y2 = px - pw / 2, px + pw / 2, py - ph / 2, py + ph / 2
    overlap = ((torch.min(p_x2, t_x2) - torch.max(p_x1, t_x1)).clamp(0) *
               (torch.min(p_y2, t_y2) - torch.max(p_y1, t_y1)).clamp(0))
    w1, h1 = p_x2 - p_x1, p_y2 - p_y1
    ious = overlap / (w1 * h1 + t_area - overlap + eps)
    enclose_w = (torch.max(p_x2, t_x2) - torch.min(p_x1, t_x1)).clamp(min=0)
    enclose_h = (torch.max(p_y2, t_y2) - torch.min(p_y1, t_y1)).clamp(min=0)
    enclose_area = enclose_w**2 + enclose_h**2 + eps
    rho2 = (((t_x1 + t_x2) - (p_x1 + p_x2))**2 + ((t_y1 + t_y2) - (p_y1 + p_y2))**2) / 4
    wh_ratio = (4 / math.pi**2) * (t_atan - torch.atan(w1 / (h1 + eps)))**2
    with torch.no_grad():
        alpha = wh_ratio / (wh_ratio - ious + (1 + eps))
    return (ious - (rho2 / enclose_area + alpha * wh_ratio)).clamp(min=-1.0, max=1.0)


@MODELS.register_module()
class YOLOv5OutputDistillLoss(YOLOv5HeadLossBase):
    """YOLOv5's own detection loss with the teacher's predictions as soft targets.

    The raw-MSE loss of the YOLOv5 distillation scripts
    (:class:`YOLOv5MSEOutputDistillLoss`) squares differences of raw logits summed over
    every class and cell: unbounded, and with a pretrained student it swamps the
    detection loss and wrecks the student (docs/en/benchmarks/gain.md). This loss keeps
    the scripts' teacher-objectness weighting but gives every part the form and scale of
    mmyolo's ``YOLOv5Head.loss_by_feat``, so ``loss_weight=1`` weighs distillation like
    the ground truth. Per level ``i``, with ``w = sigmoid(t_obj)`` (the teacher's
    confidence that an anchor holds an object)::

        L_obj = mean over all anchors of KL(sigmoid(t_obj) || sigmoid(s_obj)) * obj_level_weight_i
        L_cls = sum(w * mean_c KL(sigmoid(t_cls) || sigmoid(s_cls))) / max(sum(w), 1)
        L_box = sum(w * (1 - CIoU(decode(s_box), decode(t_box)))) / max(sum(w), 1)

    (KL of Bernoulli outputs: BCE against the teacher's probability minus its entropy,
    see :func:`weighted_bernoulli_kl`; boxes decoded as the YOLOv5 head decodes them, in
    grid units of their anchors.) Every gradient is bounded: at most ``1 / tau`` per logit
    for obj and cls, and CIoU's for boxes. The parts are summed over levels, multiplied by
    the student head's ``loss_obj / loss_cls / loss_bbox`` weights, by ``loss_weight`` and
    by batch size x world size, the factor mmyolo applies to the student loss.

    With ``image_weights`` (N,) set (:class:`YOLOv5Distill`'s ``unlabeled_weight``), each
    image's terms are multiplied by its weight, and ``sum(w)`` stays the teacher's
    weights' unweighted sum: an image of weight 2 counts as two (were the normaliser
    weighted too, a batch of unlabeled images alone would not change at all).

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
        image_weights = self._image_weights(s_box[0].shape[0])
        scales = None if image_weights is None else image_weights.tolist()
        for i in range(len(s_box)):
            self._check_level(i, s_preds, t_preds)
            n, a, h, w = s_obj[i].shape
            # in float32 also under autocast: sigmoid/KL of half-precision logits lose
            # the small differences this loss is about
            s_obj_i = s_obj[i].float().view(n, a, 1, h * w)
            t_obj_i = t_obj[i].detach().float().view(n, a, 1, h * w)
            weight = t_obj_i.sigmoid()  # (N, A, 1, H * W)
            norm = weight.sum().clamp(min=1.0)
            l_obj = l_obj + weighted_bernoulli_kl(
                s_obj_i, t_obj_i, tau=self.tau, image_weights=scales) * (
                    self.obj_level_weights[i] * self.tau**2 / s_obj_i.numel())

            ciou = ciou_xywh(
                decode_xywh(s_box[i].float().view(n, a, 4, h, w), self.priors[i]),
                decode_xywh(t_box[i].detach().float().view(n, a, 4, h, w), self.priors[i]))
            box_weight = weight.view(n, a, h, w)
            if image_weights is not None:
                box_weight = box_weight * image_weights.view(n, 1, 1, 1)
            l_box = l_box + ((1.0 - ciou) * box_weight).sum() / norm

            nc = s_cls[i].shape[1] // a
            multi_class = nc > 1
            if multi_class:
                l_cls = l_cls + weighted_bernoulli_kl(
                    s_cls[i].float().view(n, a, nc, h * w),
                    t_cls[i].detach().float().view(n, a, nc, h * w), weight,
                    self.tau, scales) * (self.tau**2 / (nc * norm))
        return self._scaled(l_box, l_obj, l_cls if multi_class else None, s_box[0].shape[0])
