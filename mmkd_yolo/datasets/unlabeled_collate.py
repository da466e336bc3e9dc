"""mmyolo's fast YOLOv5 collate, plus the batch's mask of unlabeled images."""
from __future__ import annotations

from typing import Sequence

import torch
from mmyolo.datasets.utils import yolov5_collate

from ..registry import FUNCTIONS


@FUNCTIONS.register_module()
def yolov5_unlabeled_collate(data_batch: Sequence[dict], use_ms_training: bool = False) -> dict:
    """``yolov5_collate`` with ``data_samples['unlabeled']``, a bool tensor of shape (N,)
    (True for images of :class:`YOLOv5UnlabeledDataset`).

    mmyolo's collate keeps only the boxes of the data samples (``bboxes_labels``), so the
    mark each sample carries would be lost there.

    Args:
        data_batch (Sequence[dict]): The pipeline outputs of the batch's images.
        use_ms_training (bool): As ``yolov5_collate``'s.

    Returns:
        dict: ``inputs`` and ``data_samples`` (``bboxes_labels``, ``unlabeled``).
    """
    collated = yolov5_collate(data_batch, use_ms_training)
    collated['data_samples']['unlabeled'] = torch.tensor(
        [bool(item['data_samples'].metainfo.get('unlabeled', False)) for item in data_batch])
    return collated
