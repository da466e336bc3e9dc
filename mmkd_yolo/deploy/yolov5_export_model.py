"""A YOLOv5 detector as one traceable module: images in, decoded boxes and scores out."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from .onnx_nms import OnnxNonMaxSuppression


class YOLOv5ExportModel(nn.Module):
    """Backbone, neck, head and box decoding of an mmyolo ``YOLODetector``, for export.

    mmyolo's ``predict`` mixes tensor work with Python post-processing (per-image
    filtering, ``InstanceData``) that cannot be traced. This module keeps the tensor part,
    computed as mmyolo's ``YOLOv5Head.predict_by_feat`` does it (the same priors, the same
    ``YOLOv5BBoxCoder`` decoding, ``score = sigmoid(cls) * sigmoid(obj)``, the same
    ordering of predictions), with the priors built in the graph so that a dynamic input
    size works. mmdeploy does this too, but it is heavy and pinned to old torch.

    Args:
        detector (nn.Module): An mmyolo ``YOLODetector`` with a ``YOLOv5Head``, in eval
            mode.
        nms (dict, optional): Add ONNX ``NonMaxSuppression`` (per class):
            ``iou_threshold``, ``score_threshold``, ``max_per_class``. Defaults to None
            (raw decoded predictions).

    Inputs:
        images (Tensor): RGB in [0, 1], shape (B, 3, H, W), H and W multiples of 32 (what
            mmyolo's data preprocessor gives the model).

    Outputs:
        Without ``nms``: ``boxes`` (B, N, 4) x1y1x2y2 in input pixels and ``scores``
        (B, N, C), N = 3 * (H*W/8² + H*W/16² + H*W/32²). With ``nms``: ``detections``
        (K, 7): batch index, x1, y1, x2, y2, score, label, grouped by image and class
        (ONNX's order).
    """

    def __init__(self, detector: nn.Module, nms: Optional[dict] = None) -> None:
        super().__init__()
        head = detector.bbox_head
        self.detector = detector
        self.num_classes = head.num_classes
        self.strides: List[int] = [int(s[0]) if isinstance(s, (tuple, list)) else int(s)
                                   for s in head.prior_generator.strides]
        for i, anchors in enumerate(head.prior_generator.base_anchors):
            self.register_buffer(f'base_anchors{i}', anchors.clone(), persistent=False)
        self.nms = nms

    def _priors(self, level: int, feat: Tensor) -> Tensor:
        """mmdet's ``YOLOAnchorGenerator.single_level_grid_priors``, shape (h*w*A, 4)."""
        h, w = feat.shape[2], feat.shape[3]
        stride = self.strides[level]
        base = getattr(self, f'base_anchors{level}')
        shift_x = torch.arange(w, device=feat.device, dtype=feat.dtype) * stride
        shift_y = torch.arange(h, device=feat.device, dtype=feat.dtype) * stride
        yy, xx = torch.meshgrid(shift_y, shift_x, indexing='ij')
        shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 1, 4)
        return (base[None] + shifts).reshape(-1, 4)

    def _decode(self, priors: Tensor, pred: Tensor, stride: int) -> Tensor:
        """``YOLOv5BBoxCoder.decode``: (B, n, 4) offsets -> x1y1x2y2."""
        pred = pred.sigmoid()
        cx = (priors[:, 0] + priors[:, 2]) * 0.5
        cy = (priors[:, 1] + priors[:, 3]) * 0.5
        pw = priors[:, 2] - priors[:, 0]
        ph = priors[:, 3] - priors[:, 1]
        x = (pred[..., 0] - 0.5) * 2 * stride + cx
        y = (pred[..., 1] - 0.5) * 2 * stride + cy
        w = (pred[..., 2] * 2) ** 2 * pw
        h = (pred[..., 3] * 2) ** 2 * ph
        return torch.stack([x - w * 0.5, y - h * 0.5, x + w * 0.5, y + h * 0.5], dim=-1)

    def decoded(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        """Boxes (B, N, 4) and scores (B, N, C) of ``images`` (B, 3, H, W)."""
        feats = self.detector.extract_feat(images)
        cls_scores, bbox_preds, objectnesses = self.detector.bbox_head.head_module(feats)
        b = images.shape[0]
        boxes, scores = [], []
        for level, (cls, box, obj) in enumerate(zip(cls_scores, bbox_preds, objectnesses)):
            priors = self._priors(level, cls)
            box = box.permute(0, 2, 3, 1).reshape(b, -1, 4)
            boxes.append(self._decode(priors, box, self.strides[level]))
            cls = cls.permute(0, 2, 3, 1).reshape(b, -1, self.num_classes).sigmoid()
            obj = obj.permute(0, 2, 3, 1).reshape(b, -1, 1).sigmoid()
            scores.append(cls * obj)
        return torch.cat(boxes, dim=1), torch.cat(scores, dim=1)

    def forward(self, images: Tensor):
        boxes, scores = self.decoded(images)
        if self.nms is None:
            return boxes, scores
        # ONNX NonMaxSuppression: boxes (B, N, 4), scores (B, C, N) -> (K, 3) indices
        keep = OnnxNonMaxSuppression.apply(
            boxes, scores.transpose(1, 2), self.nms['max_per_class'],
            self.nms['iou_threshold'], self.nms['score_threshold'])
        batch, label, index = keep[:, 0], keep[:, 1], keep[:, 2]
        kept_boxes = boxes[batch, index]
        kept_scores = scores[batch, index, label]
        return torch.cat([batch[:, None].to(boxes.dtype), kept_boxes, kept_scores[:, None],
                          label[:, None].to(boxes.dtype)], dim=1)
