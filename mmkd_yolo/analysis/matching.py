"""Per-image agreement with the ground truth, and the images where models differ most.

COCO's AP ranks detections over the whole set and says nothing about one image; to pick
images to look at, each model's confident boxes on an image are matched to its ground
truth as COCO's evaluation matches at one threshold (highest score first, each to the
best-overlapping object of its class not yet found, IoU >= 0.5) and counted as true and
false positives and misses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .val_set import Box, ValSet


@dataclass
class ImageMatch:
    """One model's boxes on one image against its ground truth.

    Attributes:
        tp (int): Boxes that found an object of their class.
        fp (int): Boxes that found none (or one already found).
        fn (int): Objects no box found.
    """
    tp: int
    fp: int
    fn: int

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN); 1 for an image with no objects and no boxes."""
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else 1.0


def match_image(gt: Sequence[Box], preds: Sequence[Box], score_thr: float = 0.3,
                iou_thr: float = 0.5) -> ImageMatch:
    """Match ``preds`` scored at least ``score_thr`` to ``gt``.

    Args:
        gt (list[Box]): Ground-truth boxes ``(xyxy, label, None)``.
        preds (list[Box]): Predicted boxes ``(xyxy, label, score)``.
        score_thr (float): Boxes scored below are not counted.
        iou_thr (float): Least IoU of a match.
    """
    from mmdet.evaluation.functional import bbox_overlaps
    kept = sorted((p for p in preds if p[2] >= score_thr), key=lambda p: -p[2])
    if not kept or not gt:
        return ImageMatch(0, len(kept), len(gt))
    ious = bbox_overlaps(np.array([p[0] for p in kept], np.float32),
                         np.array([g[0] for g in gt], np.float32))
    same_class = np.array([p[1] for p in kept])[:, None] == np.array([g[1] for g in gt])[None]
    ious = np.where(same_class, ious, 0.0)
    found = np.zeros(len(gt), bool)
    tp = 0
    for row in ious:
        row = np.where(found, 0.0, row)
        best = int(row.argmax())
        if row[best] >= iou_thr:
            found[best] = True
            tp += 1
    return ImageMatch(tp, len(kept) - tp, len(gt) - tp)


def rank_disagreement(val_set: ValSet, predictions: Sequence[Dict[int, List[Box]]],
                      score_thr: float = 0.3) -> List[Tuple[int, List[ImageMatch]]]:
    """The val images, those where the models' per-image F1 differs most first.

    Ties (e.g. images every model gets right) keep the val set's order, so the same
    images come first on every run.

    Args:
        val_set (ValSet): The images and their ground truth.
        predictions (list[dict]): Per model, image id -> boxes
            (:func:`~mmkd_yolo.analysis.val_set.load_predictions`).
        score_thr (float): Boxes scored below are not counted.

    Returns:
        list[tuple]: (image id, each model's :class:`ImageMatch`), most disagreement first.
    """
    rows = []
    for image in val_set.images:
        gt = val_set.gt[image['id']]
        matches = [match_image(gt, preds[image['id']], score_thr) for preds in predictions]
        f1 = [m.f1 for m in matches]
        rows.append((max(f1) - min(f1), image['id'], matches))
    order = sorted(range(len(rows)), key=lambda i: -rows[i][0])  # stable: val order on ties
    return [(rows[i][1], rows[i][2]) for i in order]
