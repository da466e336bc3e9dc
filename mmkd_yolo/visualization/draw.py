"""Plain OpenCV drawing of detections (fast; no matplotlib figure per image)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

#: BGR colours by class index (cycled).
PALETTE = [(60, 60, 230), (60, 200, 60), (230, 120, 40), (40, 200, 230), (200, 60, 200),
           (200, 200, 40), (120, 60, 200), (60, 160, 160)]


def draw_boxes(img: np.ndarray, boxes: Sequence[tuple], classes: Sequence[str],
               scale: float = 1.0) -> np.ndarray:
    """A copy of ``img`` with boxes, class names and scores drawn.

    Args:
        img (np.ndarray): BGR image, shape (H, W, 3).
        boxes (Sequence[tuple]): ``((x1, y1, x2, y2), label, score or None)`` in the
            image's pixels (before ``scale``).
        classes (Sequence[str]): Class names by label.
        scale (float): ``img`` was resized by this factor; boxes are scaled to match.
    """
    import cv2
    out = img.copy()
    for (x0, y0, x1, y1), label, score in boxes:
        colour = PALETTE[label % len(PALETTE)]
        p0, p1 = (int(x0 * scale), int(y0 * scale)), (int(x1 * scale), int(y1 * scale))
        cv2.rectangle(out, p0, p1, colour, 2)
        text = classes[label] + ('' if score is None else f' {score:.2f}')
        org = (p0[0] + 2, max(p0[1] - 4, 10))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 3)
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)
    return out


def draw_detections(path: str, dets: Sequence[dict], out: str,
                    classes: Optional[Sequence[str]] = None) -> None:
    """Draw ``dets`` (dicts with ``bbox``, ``label``, ``score``, ``class``) on the image
    at ``path`` and write it to ``out``."""
    import cv2
    img = cv2.imread(path)
    if img is None:
        raise FileNotFoundError(f'cannot read image {path!r}')
    names = {d['label']: d['class'] for d in dets}
    labels = max(names, default=-1) + 1
    classes = classes or [names.get(i, str(i)) for i in range(labels)]
    cv2.imwrite(out, draw_boxes(img, [(d['bbox'], d['label'], d['score']) for d in dets],
                                classes))
