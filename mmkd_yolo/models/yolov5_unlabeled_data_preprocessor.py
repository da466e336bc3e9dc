"""mmyolo's YOLOv5 data preprocessor, keeping the batch's mask of unlabeled images and,
optionally, making the student's augmented view of them."""
from __future__ import annotations

from typing import Optional

import torch
from mmyolo.models.data_preprocessors import YOLOv5DetDataPreprocessor

from ..registry import MODELS


@MODELS.register_module()
class YOLOv5UnlabeledDataPreprocessor(YOLOv5DetDataPreprocessor):
    """``YOLOv5DetDataPreprocessor`` that passes ``data_samples['unlabeled']`` on.

    mmyolo's preprocessor rebuilds the training ``data_samples`` from the keys it knows
    (``bboxes_labels``, ``img_metas``, masks, keypoints), which would drop the mask of
    unlabeled images that :func:`~mmkd_yolo.datasets.yolov5_unlabeled_collate` adds.
    ``tools/train.py --unlabeled`` puts this class in place of the student's.

    With ``student_aug`` (``--unlabeled-aug strong``) it also makes the student's view of
    a training batch, ``data_samples['student_inputs']``: the unlabeled images augmented
    (in pixel space: the normalisation undone with this preprocessor's own mean and std,
    augmented, redone), the labeled ones as they are. The teacher keeps ``inputs``.

    Args:
        *args: As ``YOLOv5DetDataPreprocessor``'s.
        student_aug (dict, optional): The augmentation of the student's view, a MODELS
            config taking and returning pixel values (M, 3, H, W) in [0, 255], e.g.
            ``dict(type='mmkd_yolo.UnlabeledPhotometricAug')``. Defaults to None (one view).
        **kwargs: As ``YOLOv5DetDataPreprocessor``'s.
    """

    def __init__(self, *args, student_aug: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.student_aug = None
        if student_aug:
            cfg = dict(student_aug)
            # in mmkd_yolo's scope whatever the default scope is when the model is built
            # (mmyolo's, in its configs), unless the config names its own
            cfg.setdefault('_scope_', 'mmkd_yolo')
            self.student_aug = MODELS.build(cfg)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalise and pad as mmyolo's; in training, keep ``unlabeled``, shape (N,), and
        add ``student_inputs`` (N, 3, H, W) when ``student_aug`` is set and the batch has
        unlabeled images.

        Args:
            data (dict): ``inputs`` and ``data_samples`` from the dataloader.
            training (bool): Whether this is a training batch.

        Returns:
            dict: ``inputs`` (N, 3, H, W) and ``data_samples``.
        """
        out = super().forward(data, training)
        samples = data.get('data_samples')
        if training and isinstance(samples, dict) and 'unlabeled' in samples:
            unlabeled = samples['unlabeled'].to(out['inputs'].device)
            out['data_samples']['unlabeled'] = unlabeled
            if self.student_aug is not None and unlabeled.any():
                out['data_samples']['student_inputs'] = self._student_view(
                    out['inputs'], unlabeled)
        return out

    @torch.no_grad()
    def _student_view(self, inputs: torch.Tensor, unlabeled: torch.Tensor) -> torch.Tensor:
        """``inputs`` (N, 3, H, W) with the unlabeled rows replaced by their augmented
        copy, normalised as ``inputs``."""
        # in float32 also under --amp: mmengine runs the preprocessor inside the optim
        # wrapper's autocast, which would run the augmentation's matmul and convolution
        # in half precision (bfloat16 rounds pixel values above 128 to whole levels)
        with torch.autocast(inputs.device.type, enabled=False):
            pixels = inputs[unlabeled].float()
            if self._enable_normalize:
                pixels = pixels * self.std + self.mean
            augmented = self.student_aug(pixels)
            if self._enable_normalize:
                augmented = (augmented - self.mean) / self.std
        student = inputs.clone()
        student[unlabeled] = augmented.to(student.dtype)
        return student
