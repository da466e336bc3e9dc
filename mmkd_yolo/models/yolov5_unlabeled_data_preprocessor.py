"""mmyolo's YOLOv5 data preprocessor, keeping the batch's mask of unlabeled images."""
from __future__ import annotations

from mmyolo.models.data_preprocessors import YOLOv5DetDataPreprocessor

from ..registry import MODELS


@MODELS.register_module()
class YOLOv5UnlabeledDataPreprocessor(YOLOv5DetDataPreprocessor):
    """``YOLOv5DetDataPreprocessor`` that passes ``data_samples['unlabeled']`` on.

    mmyolo's preprocessor rebuilds the training ``data_samples`` from the keys it knows
    (``bboxes_labels``, ``img_metas``, masks, keypoints), which would drop the mask of
    unlabeled images that :func:`~mmkd_yolo.datasets.yolov5_unlabeled_collate` adds.
    ``tools/train.py --unlabeled`` puts this class in place of the student's.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalise and pad as mmyolo's; in training, keep ``unlabeled``, shape (N,).

        Args:
            data (dict): ``inputs`` and ``data_samples`` from the dataloader.
            training (bool): Whether this is a training batch.

        Returns:
            dict: ``inputs`` (N, 3, H, W) and ``data_samples``.
        """
        out = super().forward(data, training)
        samples = data.get('data_samples')
        if training and isinstance(samples, dict) and 'unlabeled' in samples:
            out['data_samples']['unlabeled'] = samples['unlabeled'].to(out['inputs'].device)
        return out
