"""The val set a test config evaluates on, and a model's predictions on it, per image."""
from __future__ import annotations

import json
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config

from ..apis.config import inner_dataset
from ..errors import ConfigError, DataError

#: A box: ([x1, y1, x2, y2] in image pixels, class index, score or None for ground truth).
Box = Tuple[List[float], int, Optional[float]]


@dataclass
class ValSet:
    """A COCO-format val set: what the COCO metric scores against.

    Attributes:
        ann_file (str): The annotation file (the test evaluator's).
        classes (list[str]): Category names by class index (categories by id).
        category_ids (list[int]): Category ids by class index.
        images (list[dict]): ``{'id', 'path'}`` per image, in the file's order.
        gt (dict[int, list[Box]]): Image id -> its (non-crowd) ground-truth boxes.
        boxes_per_class (list[int]): Ground-truth boxes of each class.
    """
    ann_file: str
    classes: List[str]
    category_ids: List[int]
    images: List[dict]
    gt: Dict[int, List[Box]]
    boxes_per_class: List[int]

    @property
    def num_boxes(self) -> int:
        return sum(self.boxes_per_class)


def val_set_files(cfg: Config) -> Tuple[str, str]:
    """(annotation file, image folder) that ``cfg``'s test evaluator and dataset read.

    Raises:
        ConfigError: The test evaluator names no annotation file.
    """
    evaluators = cfg.get('test_evaluator') or []
    evaluators = evaluators if isinstance(evaluators, list) else [evaluators]
    ann_file = next((e['ann_file'] for e in evaluators if e.get('ann_file')), None)
    if ann_file is None:
        raise ConfigError('the config\'s test_evaluator has no ann_file (a COCO json of the '
                          'val set): give --data data.yaml, or set test_evaluator.ann_file.')
    dataset = inner_dataset(cfg.test_dataloader)
    prefix = (dataset.get('data_prefix') or {}).get('img', '')
    return osp.abspath(ann_file), osp.join(dataset.get('data_root') or '', prefix)


def load_val_set(ann_file: str, img_prefix: str = '') -> ValSet:
    """Read a COCO annotation file.

    Args:
        ann_file (str): The file.
        img_prefix (str): Folder the images' ``file_name`` are relative to (as mmdet's
            ``data_root`` + ``data_prefix.img``; absolute names are kept).
    """
    if not osp.isfile(ann_file):
        raise DataError(f'val annotation file {ann_file!r} does not exist: give --data '
                        'data.yaml, or a config whose test_evaluator.ann_file exists.')
    with open(ann_file) as f:
        coco = json.load(f)
    categories = sorted(coco.get('categories', []), key=lambda c: c['id'])
    label = {c['id']: i for i, c in enumerate(categories)}
    images = [dict(id=im['id'], path=osp.join(img_prefix, im['file_name']))
              for im in coco.get('images', [])]
    gt: Dict[int, List[Box]] = {im['id']: [] for im in images}
    counts = [0] * len(categories)
    for ann in coco.get('annotations', []):
        # crowd regions are ignored by COCO's AP: neither found nor missed
        if ann.get('iscrowd') or ann['image_id'] not in gt:
            continue
        x, y, w, h = ann['bbox']
        cls = label[ann['category_id']]
        gt[ann['image_id']].append(([x, y, x + w, y + h], cls, None))
        counts[cls] += 1
    return ValSet(osp.abspath(ann_file), [c['name'] for c in categories],
                  [c['id'] for c in categories], images, gt, counts)


def load_predictions(bbox_json: str, val_set: ValSet) -> Dict[int, List[Box]]:
    """A model's predictions (mmdet's ``<prefix>.bbox.json``) per image of ``val_set``,
    highest score first; none where the file is missing (the COCO metric writes no file
    for a model without a single detection)."""
    rows = []
    if osp.isfile(bbox_json):
        with open(bbox_json) as f:
            rows = json.load(f)
    label = {cat_id: i for i, cat_id in enumerate(val_set.category_ids)}
    preds: Dict[int, List[Box]] = {im['id']: [] for im in val_set.images}
    for row in rows:
        x, y, w, h = row['bbox']
        preds[row['image_id']].append(([x, y, x + w, y + h], label[row['category_id']],
                                       float(row['score'])))
    for boxes in preds.values():
        boxes.sort(key=lambda b: -b[2])
    return preds
