"""Batches that mix labeled and unlabeled images (``--unlabeled``): the labeled part,
the student's view and the images' weights.

mmkd_yolo's collate marks each image of a batch in ``data_samples['unlabeled']``, shape
(N,); the student's detection loss is computed on the labeled images only (or on all,
the unlabeled ones against the teacher's boxes: :mod:`.pseudo_labels`), the
distillation losses on all of them. The preprocessor may add the student's own view of
the batch (``data_samples['student_inputs']``, ``--unlabeled-aug``).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import torch
from torch import nn

from ..errors import ConfigError
from ..losses.yolov5_head_loss_base import weighs_images


def unlabeled_mask(data_samples) -> Optional[torch.Tensor]:
    """The batch's mask of unlabeled images, shape (N,), or None for a labeled batch.

    Raises:
        ConfigError: Unlabeled images in a batch with mask or keypoint targets.
    """
    unlabeled = data_samples.get('unlabeled') if isinstance(data_samples, dict) else None
    if unlabeled is not None:
        extra = [k for k in ('masks', 'keypoints') if k in data_samples]
        if extra:
            raise ConfigError(f'unlabeled images with {extra} targets: --unlabeled '
                              'takes box detection configs only (their detection loss '
                              'is sliced to the labeled images by box).')
    return unlabeled


def labeled_targets(data_samples: dict,
                    unlabeled: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, List]:
    """Which images of a batch are labeled, and their boxes and metas re-indexed to them.

    Args:
        data_samples (dict): ``bboxes_labels`` (B, 6): image index, class, box;
            ``img_metas``.
        unlabeled (Tensor): Bool, shape (N,), True for images without labels.

    Returns:
        tuple: ``keep`` (K,) indexes of the labeled images, ``bboxes_labels`` (B, 6) with
        image indexes 0..K-1, and the K ``img_metas``.
    """
    keep = (~unlabeled).nonzero().squeeze(1)
    index = torch.full_like(unlabeled, -1, dtype=torch.long)
    index[keep] = torch.arange(len(keep), device=keep.device)
    boxes = data_samples['bboxes_labels']
    new_index = index[boxes[:, 0].long()]
    boxes = boxes[new_index >= 0].clone()  # (an unlabeled image has no boxes anyway)
    boxes[:, 0] = new_index[new_index >= 0].to(boxes.dtype)
    return keep, boxes, [data_samples['img_metas'][i] for i in keep.tolist()]


def labeled_part(batch_inputs: torch.Tensor, data_samples: dict,
                 unlabeled: torch.Tensor) -> Tuple[torch.Tensor, dict]:
    """The labeled images of a batch, shape (K, 3, H, W), and their samples."""
    keep, boxes, metas = labeled_targets(data_samples, unlabeled)
    return batch_inputs[keep], dict(data_samples, bboxes_labels=boxes, img_metas=metas,
                                    unlabeled=unlabeled[keep])


def labeled_detection_loss(detector: nn.Module, batch_inputs: torch.Tensor,
                           data_samples: dict,
                           unlabeled: torch.Tensor) -> Dict[str, torch.Tensor]:
    """A YOLOv5 detector's detection loss on the labeled images of a mixed batch.

    The detector runs on the whole batch (its recorded head outputs feed the
    distillation losses on every image); mmyolo's YOLOv5 loss then sees only the
    labeled images' outputs and boxes, so an unlabeled image adds no objectness
    negatives and no class targets. mmyolo scales its per-image mean by the images it
    sees (K labeled of N), so each labeled image weighs what it weighs in a labeled
    batch. Scaling to N instead (the labeled loss at a full batch's size, as
    semi-supervised detectors keep their supervised loss) was measured and not kept:
    against the previous release's recipe (which stopped distilling for the last
    epochs), +2.6 points on the demo task, -4.0 on coco128, and below this release's
    (docs/en/benchmarks/unlabeled.md).

    Args:
        detector (nn.Module): An mmyolo YOLOv5 ``YOLODetector`` (the student).
        batch_inputs (Tensor): Images, shape (N, 3, H, W).
        data_samples (dict): ``bboxes_labels`` (B, 6): image index, class, box;
            ``img_metas``; ``unlabeled``.
        unlabeled (Tensor): Bool, shape (N,), True for images without labels.

    Returns:
        dict[str, Tensor]: ``loss_cls``, ``loss_obj``, ``loss_bbox``.
    """
    cls_scores, bbox_preds, objectnesses = detector.bbox_head(
        detector.extract_feat(batch_inputs))
    keep, boxes, metas = labeled_targets(data_samples, unlabeled)
    if len(keep) == 0:  # no labeled image: a zero loss that keeps the graph
        zero = sum(t.sum() for t in (*cls_scores, *bbox_preds, *objectnesses)) * 0
        return dict(loss_cls=zero, loss_obj=zero, loss_bbox=zero)
    return detector.bbox_head.loss_by_feat(
        [c[keep] for c in cls_scores], [b[keep] for b in bbox_preds],
        [o[keep] for o in objectnesses], boxes, metas)


def split_views(data_samples) -> Tuple[Optional[torch.Tensor], object]:
    """The student's view of the batch, and the samples without it.

    Returns:
        tuple: ``student_inputs`` (N, 3, H, W) or None when the student sees the
        teacher's inputs, and ``data_samples`` (a new dict without that key, else as
        given: the caller's dict is not changed).
    """
    if not isinstance(data_samples, dict) or 'student_inputs' not in data_samples:
        return None, data_samples
    rest = {k: v for k, v in data_samples.items() if k != 'student_inputs'}
    return data_samples['student_inputs'], rest


def unlabeled_image_weights(unlabeled: Optional[torch.Tensor],
                            weight: float) -> Optional[torch.Tensor]:
    """Per-image weights of the output-distillation loss, shape (N,): 1 for labeled
    images, ``weight`` for unlabeled ones; None (no weighting) for a batch without
    unlabeled images or with ``weight`` 1."""
    if unlabeled is None or weight == 1.0 or not unlabeled.any():
        return None
    ones = torch.ones(unlabeled.shape, dtype=torch.float32, device=unlabeled.device)
    return torch.where(unlabeled, ones * weight, ones)


@contextmanager
def image_weights_set(losses: Iterable[nn.Module],
                      weights: Optional[torch.Tensor]) -> Iterator[None]:
    """Give ``weights`` (N,) to each loss that weighs images (:func:`weighs_images`) for
    the duration, and clear them afterwards, also when a loss raises (a later batch of
    another size would otherwise meet stale weights)."""
    takers = [loss for loss in losses if weighs_images(loss)]
    if weights is not None:
        for loss in takers:
            loss.image_weights = weights
    try:
        yield
    finally:
        for loss in takers:
            loss.image_weights = None
