"""A generated detection dataset: shapes in clutter on textured backgrounds, COCO format.

Used by the tests and by ``make demo``: it needs nothing downloaded and trains on a CPU in
minutes. It is made hard enough that a small student has something to learn from a
larger teacher: eight classes told apart by shape alone (every class takes any colour),
objects from a few pixels to a third of the image, partly occluding each other, on
textured backgrounds with distractors (lines, blobs and partial shapes that are not
objects) and noise.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Dict, List

import cv2
import numpy as np

CLASSES = ('square', 'circle', 'triangle', 'diamond', 'ring', 'cross', 'star', 'hexagon')
#: BGR colour of each class's family: classes 2k and 2k+1 share one.
_FAMILIES = ((40, 40, 220), (40, 200, 40), (220, 80, 40), (40, 200, 230))


def _polygon(cx: float, cy: float, radius: float, n: int, phase: float,
             inner: float = 1.0) -> np.ndarray:
    """Vertices of a regular polygon (a star when ``inner < 1``), int32 (K, 2)."""
    k = n * (2 if inner < 1 else 1)
    angles = phase + np.arange(k) * 2 * np.pi / k
    radii = np.where(np.arange(k) % 2 == 1, radius * inner, radius) if inner < 1 else \
        np.full(k, radius)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)],
                    axis=1).round().astype(np.int32)


def _draw_shape(img: np.ndarray, cls: int, x0: int, y0: int, size: int,
                colour: tuple) -> None:
    """Draw class ``cls`` filling the box (x0, y0, size, size)."""
    r = size / 2
    cx, cy = x0 + r, y0 + r
    thick = max(1, size // 6)
    if cls == 0:  # square
        cv2.rectangle(img, (x0, y0), (x0 + size - 1, y0 + size - 1), colour, -1)
    elif cls == 1:  # disc
        cv2.circle(img, (int(cx), int(cy)), int(r), colour, -1)
    elif cls == 2:  # triangle
        pts = np.array([[cx, y0], [x0, y0 + size - 1], [x0 + size - 1, y0 + size - 1]],
                       np.int32)
        cv2.fillPoly(img, [pts], colour)
    elif cls == 3:  # diamond
        cv2.fillPoly(img, [_polygon(cx, cy, r, 4, 0.0)], colour)
    elif cls == 4:  # ring
        cv2.circle(img, (int(cx), int(cy)), int(r - thick / 2), colour, thick)
    elif cls == 5:  # cross
        cv2.rectangle(img, (int(cx - thick), y0), (int(cx + thick), y0 + size - 1), colour, -1)
        cv2.rectangle(img, (x0, int(cy - thick)), (x0 + size - 1, int(cy + thick)), colour, -1)
    elif cls == 6:  # five-pointed star
        cv2.fillPoly(img, [_polygon(cx, cy, r, 5, -np.pi / 2, inner=0.45)], colour)
    else:  # hexagon
        cv2.fillPoly(img, [_polygon(cx, cy, r, 6, 0.0)], colour)


def _background(rng: np.random.Generator, img_size: int) -> np.ndarray:
    """Smooth colour gradient + stripes or blotches + noise."""
    base = rng.integers(60, 196, size=3)
    ramp = np.linspace(-1, 1, img_size)
    direction = rng.uniform(-40, 40, size=(2, 3))
    img = (base[None, None, :] + ramp[:, None, None] * direction[0] +
           ramp[None, :, None] * direction[1])
    if rng.random() < 0.5:  # stripes
        period = rng.uniform(6, 24)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:img_size, 0:img_size]
        img += 12 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi /
                           period)[..., None]
    else:  # blotches
        low = rng.normal(0, 20, size=(max(2, img_size // 16), ) * 2 + (3, ))
        img += cv2.resize(low, (img_size, img_size), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 5, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _distractors(img: np.ndarray, rng: np.random.Generator) -> None:
    """Lines and blobs that are not objects."""
    size = img.shape[0]
    for _ in range(int(rng.integers(1, 5))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.6:
            p0 = tuple(int(v) for v in rng.integers(0, size, size=2))
            p1 = tuple(int(v) for v in rng.integers(0, size, size=2))
            cv2.line(img, p0, p1, colour, int(rng.integers(1, 3)))
        else:
            centre = tuple(int(v) for v in rng.integers(0, size, size=2))
            axes = tuple(int(v) for v in rng.integers(2, max(3, size // 10), size=2))
            cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0,
                        float(rng.uniform(60, 300)), colour, -1)


def _image(rng: np.random.Generator, img_size: int, max_objects: int,
           num_classes: int) -> tuple:
    img = _background(rng, img_size)
    _distractors(img, rng)
    anns: List[Dict] = []
    boxes: List[tuple] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        # log-uniform sizes: many small objects, some large
        size = int(np.exp(rng.uniform(np.log(max(8, img_size // 14)), np.log(img_size / 3))))
        for _try in range(20):
            x0 = int(rng.integers(0, img_size - size))
            y0 = int(rng.integers(0, img_size - size))
            # partial occlusion allowed: at most a third of a box under another
            if all(_overlap(x0, y0, size, *b) < 0.33 for b in boxes):
                break
        else:
            continue
        boxes.append((x0, y0, size))
        cls = int(rng.integers(0, num_classes))
        colour = tuple(int(np.clip(c + rng.integers(-40, 41), 0, 255))
                       for c in _FAMILIES[cls // 2])
        _draw_shape(img, cls, x0, y0, size, colour)
        anns.append(dict(category_id=cls + 1,
                         bbox=[float(x0), float(y0), float(size), float(size)]))
    img = cv2.GaussianBlur(img, (3, 3), 0)
    return img, anns


def _overlap(x0: int, y0: int, s0: int, x1: int, y1: int, s1: int) -> float:
    """Fraction of the smaller of two square boxes covered by the other."""
    w = max(0, min(x0 + s0, x1 + s1) - max(x0, x1))
    h = max(0, min(y0 + s0, y1 + s1) - max(y0, y1))
    return w * h / float(min(s0, s1)**2)


def make_shapes_dataset(root: str,
                        num_train: int = 64,
                        num_val: int = 16,
                        img_size: int = 128,
                        max_objects: int = 8,
                        num_classes: int = len(CLASSES),
                        seed: int = 0) -> Dict[str, str]:
    """Write ``root/{train,val}/*.jpg`` and ``root/annotations/{train,val}.json``.

    Args:
        root (str): Output folder (created).
        num_train (int): Training images. Defaults to 64.
        num_val (int): Validation images. Defaults to 16.
        img_size (int): Square image side in pixels. Defaults to 128.
        max_objects (int): Most objects per image (at least one). Defaults to 8.
        num_classes (int): Use the first 1 to 8 of :data:`CLASSES`. Defaults to 8.
        seed (int): Random seed; the same seed writes the same dataset. Defaults to 0.

    Returns:
        dict[str, str]: ``data_root``, ``train_ann``, ``val_ann`` (relative to
        ``data_root``), ``train_prefix``, ``val_prefix`` and ``classes`` (comma-joined).
    """
    if not 1 <= num_classes <= len(CLASSES):
        raise ValueError(f'num_classes must be 1..{len(CLASSES)}, got {num_classes}')
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    # COCO category ids start at 1
    categories = [dict(id=i + 1, name=CLASSES[i]) for i in range(num_classes)]
    ann_id = 0
    for split, count in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            img, anns = _image(rng, img_size, max_objects, num_classes)
            name = f'{split}_{i:05d}.jpg'
            cv2.imwrite(osp.join(root, split, name), img)
            images.append(dict(id=i, file_name=name, width=img_size, height=img_size))
            for ann in anns:
                ann_id += 1
                w, h = ann['bbox'][2:]
                annotations.append(
                    dict(id=ann_id, image_id=i, iscrowd=0, area=w * h, **ann))
        with open(osp.join(root, 'annotations', f'{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return dict(
        data_root=root,
        train_ann='annotations/train.json',
        val_ann='annotations/val.json',
        train_prefix='train/',
        val_prefix='val/',
        classes=','.join(CLASSES[:num_classes]))
