"""The comparison picture: val images in rows, ground truth and each model in columns."""
from __future__ import annotations

import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .matching import ImageMatch
from .val_set import Box, ValSet

#: Panel size (px, longer side): small val images are enlarged, large ones reduced.
PANEL = 360
_WHITE, _BLACK, _GREY = (255, 255, 255), (0, 0, 0), (90, 90, 90)


def _header(width: int, lines: Sequence[Tuple[str, tuple]]) -> np.ndarray:
    import cv2
    header = np.full((8 + 20 * len(lines), width, 3), 255, np.uint8)
    for i, (text, colour) in enumerate(lines):
        cv2.putText(header, text, (6, 20 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                    cv2.LINE_AA)
    return header


def draw_comparison_grid(val_set: ValSet, names: Sequence[str],
                         predictions: Sequence[Dict[int, List[Box]]],
                         rows: Sequence[Tuple[int, List[ImageMatch]]], out: str,
                         score_thr: float = 0.3) -> None:
    """Write a picture: one row per image of ``rows``, its ground truth, then each
    model's boxes scored at least ``score_thr`` with its per-image counts.

    Args:
        val_set (ValSet): The images and their ground truth.
        names (list[str]): The models' names.
        predictions (list[dict]): Per model, image id -> boxes.
        rows (list[tuple]): (image id, each model's :class:`ImageMatch`), in the order
            to draw (:func:`~mmkd_yolo.analysis.matching.rank_disagreement`).
        out (str): The image file to write.
        score_thr (float): Boxes scored below are not drawn.
    """
    import cv2

    from ..visualization import draw_boxes
    paths = {im['id']: im['path'] for im in val_set.images}
    drawn = []
    for image_id, matches in rows:
        img = cv2.imread(paths[image_id])
        if img is None:
            raise FileNotFoundError(f'cannot read val image {paths[image_id]!r}')
        scale = PANEL / max(img.shape[:2])
        big = cv2.resize(img, None, fx=scale, fy=scale,
                         interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)
        gt = val_set.gt[image_id]
        panels = [(_header(big.shape[1], [
            ('ground truth', _BLACK),
            (f'{len(gt)} objects, {osp.basename(paths[image_id])}'[:44], _GREY)]),
            draw_boxes(big, gt, val_set.classes, scale=scale))]
        for name, preds, match in zip(names, predictions, matches):
            boxes = [b for b in preds[image_id] if b[2] >= score_thr]
            panels.append((_header(big.shape[1], [
                (name[:36], _BLACK),
                (f'F1 {match.f1:.2f}: {match.tp} found, {match.fp} false, {match.fn} missed',
                 _GREY)]), draw_boxes(big, boxes, val_set.classes, scale=scale)))
        drawn.append(np.hstack([
            np.pad(np.vstack([header, panel]), ((2, 2), (2, 2), (0, 0)), constant_values=255)
            for header, panel in panels]))
    width = max(r.shape[1] for r in drawn)
    drawn = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
             for r in drawn]
    title = _header(width, [(f'val images where the models differ most (boxes scored >= '
                             f'{score_thr:g}; found/false/missed at IoU 0.5)', _BLACK)])
    cv2.imwrite(out, np.vstack([title] + drawn))
