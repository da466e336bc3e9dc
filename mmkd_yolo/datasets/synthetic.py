"""A generated detection dataset: coloured shapes on textured backgrounds, COCO format.

Used by the tests and by ``make demo``: it needs nothing downloaded, and a small YOLOv5
learns it on a CPU in minutes, so a distillation gain can be measured where the student
can actually learn (128 real COCO images are below the noise floor).
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Dict, List, Sequence

import cv2
import numpy as np

#: class name -> BGR colour; the shape is drawn by :func:`_draw`.
CLASSES = ('red_square', 'green_circle', 'blue_triangle')
_COLOURS = ((40, 40, 220), (40, 200, 40), (220, 60, 40))


def _draw(img: np.ndarray, cls: int, x0: int, y0: int, size: int,
          rng: np.random.Generator) -> List[float]:
    colour = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in _COLOURS[cls])
    x1, y1 = x0 + size, y0 + size
    if cls == 0:
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, thickness=-1)
    elif cls == 1:
        cv2.circle(img, (x0 + size // 2, y0 + size // 2), size // 2, colour, thickness=-1)
    else:
        pts = np.array([[x0 + size // 2, y0], [x0, y1], [x1, y1]], np.int32)
        cv2.fillPoly(img, [pts], colour)
    return [float(x0), float(y0), float(size), float(size)]


def _image(rng: np.random.Generator, img_size: int, max_objects: int,
           classes: Sequence[int]) -> tuple:
    img = rng.integers(90, 166, size=(img_size, img_size, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (5, 5), 0)
    anns: List[Dict] = []
    occupied: List[tuple] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        size = int(rng.integers(img_size // 8, img_size // 3))
        for _try in range(20):
            x0 = int(rng.integers(0, img_size - size))
            y0 = int(rng.integers(0, img_size - size))
            if all(x0 + size <= a or a + s <= x0 or y0 + size <= b or b + s <= y0
                   for a, b, s in occupied):
                break
        else:
            continue
        occupied.append((x0, y0, size))
        cls = int(rng.choice(classes))
        anns.append(dict(category_id=cls + 1, bbox=_draw(img, cls, x0, y0, size, rng)))
    return img, anns


def make_shapes_dataset(root: str,
                        num_train: int = 64,
                        num_val: int = 16,
                        img_size: int = 128,
                        max_objects: int = 4,
                        num_classes: int = 3,
                        seed: int = 0) -> Dict[str, str]:
    """Write ``root/{train,val}/*.jpg`` and ``root/annotations/{train,val}.json``.

    Args:
        root (str): Output folder (created).
        num_train (int): Training images. Defaults to 64.
        num_val (int): Validation images. Defaults to 16.
        img_size (int): Square image side in pixels. Defaults to 128.
        max_objects (int): Most shapes per image (at least one). Defaults to 4.
        num_classes (int): 1 to 3 shape classes. Defaults to 3.
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
            img, anns = _image(rng, img_size, max_objects, range(num_classes))
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
