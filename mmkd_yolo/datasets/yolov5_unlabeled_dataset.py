"""mmyolo's YOLOv5 COCO dataset for images without labels: every sample says so."""
from __future__ import annotations

from typing import Any, Optional

from mmyolo.datasets import YOLOv5CocoDataset

from ..registry import DATASETS


@DATASETS.register_module()
class YOLOv5UnlabeledDataset(YOLOv5CocoDataset):
    """Images without labels for distillation (``tools/train.py --unlabeled``).

    mmyolo's ``YOLOv5CocoDataset`` over a COCO json that lists images only (made by
    :func:`~mmkd_yolo.datasets.unlabeled_coco_json`), with the labeled set's training
    pipeline. Two differences:

    * images are never dropped for having no boxes (``filter_empty_gt=False``): none has;
    * each sample's metainfo holds ``unlabeled=True``, which
      :func:`yolov5_unlabeled_collate` turns into the batch's ``unlabeled`` mask, so the
      student's detection loss leaves these images out: an unlabeled image is not a
      background image (no objectness negatives from labels that were never drawn).

    Mosaic and MixUp in the pipeline draw their extra images from the dataset that
    prepares the sample (mmyolo passes ``dataset=self``), so unlabeled images are only
    ever mixed with unlabeled ones.

    Args:
        filter_cfg (dict, optional): As mmdet's, with ``filter_empty_gt`` forced off.
        **kwargs: ``YOLOv5CocoDataset``'s arguments.
    """

    def __init__(self, *args, filter_cfg: Optional[dict] = None, **kwargs) -> None:
        filter_cfg = dict(filter_cfg or {}, filter_empty_gt=False)
        super().__init__(*args, filter_cfg=filter_cfg, **kwargs)

    def prepare_data(self, idx: int) -> Any:
        """The pipeline's output for image ``idx``, marked ``unlabeled``."""
        results = super().prepare_data(idx)
        if results is not None:
            results['data_samples'].set_metainfo(dict(unlabeled=True))
        return results
