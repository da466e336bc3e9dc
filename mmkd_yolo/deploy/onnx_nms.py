"""ONNX ``NonMaxSuppression`` as a traceable PyTorch op."""
from __future__ import annotations

import torch
from torch import Tensor


class OnnxNonMaxSuppression(torch.autograd.Function):
    """Per-class NMS with ONNX's interface and result, exported as the ONNX op.

    ``forward`` computes the same result in PyTorch (mmcv's NMS per batch and class), so
    the module also runs eagerly; ``symbolic`` emits ONNX's
    ``NonMaxSuppression`` (opset >= 11), which onnxruntime implements.

    Args (of ``apply``):
        boxes (Tensor): (B, N, 4) x1y1x2y2.
        scores (Tensor): (B, C, N).
        max_per_class (int): Boxes kept per batch item and class at most.
        iou_threshold (float): Overlap above which the lower-scored box is dropped.
        score_threshold (float): Boxes scoring at most this are dropped first.

    Returns:
        Tensor: (K, 3) int64 ``[batch, class, box]`` of the kept boxes.
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_per_class: int,
                iou_threshold: float, score_threshold: float) -> Tensor:
        from mmcv.ops import nms
        keep = []
        for b in range(boxes.shape[0]):
            for c in range(scores.shape[1]):
                idx = torch.nonzero(scores[b, c] > score_threshold).flatten()
                _, order = nms(boxes[b, idx], scores[b, c, idx], iou_threshold)
                order = order[:max_per_class]
                sel = idx[order]
                keep.append(torch.stack([torch.full_like(sel, b), torch.full_like(sel, c),
                                         sel], dim=1))
        return torch.cat(keep) if keep else boxes.new_zeros((0, 3), dtype=torch.long)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou_threshold, score_threshold):
        return g.op(
            'NonMaxSuppression', boxes, scores,
            g.op('Constant', value_t=torch.tensor([max_per_class], dtype=torch.long)),
            g.op('Constant', value_t=torch.tensor([iou_threshold], dtype=torch.float)),
            g.op('Constant', value_t=torch.tensor([score_threshold], dtype=torch.float)),
            center_point_box_i=0)
