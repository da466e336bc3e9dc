"""The teacher's confident boxes as detection targets on unlabeled images (pseudo-labels).

Semi-supervised detectors (Unbiased Teacher, https://arxiv.org/abs/2102.09480; Efficient
Teacher, https://arxiv.org/abs/2302.07577) give an unlabeled image the detection loss too,
against the boxes the teacher is confident of. Here the boxes come from the teacher's
head outputs recorded for the distillation losses in the same step: no second forward.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch
from mmengine.config import ConfigDict
from mmrazor.models.task_modules.recorder import ModuleOutputsRecorder
from torch import nn

from ..errors import ConfigError
from ..losses.yolov5_head_loss_base import HeadOutputs
#: The most pseudo boxes kept per image (mmdet's semi-supervised detectors keep 100).
MAX_PSEUDO_BOXES = 100
#: Where mmyolo's YOLOv5 detector computes its head outputs.
HEAD_MODULE = 'bbox_head.head_module'


def head_outputs_recorder(recorders: Dict[str, nn.Module]) -> str:
    """The name of the teacher recorder of its head outputs.

    Args:
        recorders (dict): The distiller's teacher recorders, by name.

    Raises:
        ConfigError: No ``ModuleOutputs`` recorder on ``bbox_head.head_module``.
    """
    for name, recorder in recorders.items():
        if isinstance(recorder, ModuleOutputsRecorder) and recorder.source == HEAD_MODULE:
            return name
    raise ConfigError(
        'pseudo-labels (--unlabeled-pseudo-labels) are decoded from the teacher\'s head '
        f'outputs, but no teacher recorder records {HEAD_MODULE!r}: add '
        f"preds=dict(type='ModuleOutputs', source='{HEAD_MODULE}') to "
        'distiller.teacher_recorders (the kd-out configs and --d-output / --d-feature do).')


def teacher_nms(head: nn.Module) -> dict:
    """The NMS config of the teacher's ``test_cfg``, which pseudo-labels are suppressed with.

    Args:
        head (nn.Module): The teacher's mmyolo ``YOLOv5Head``.

    Raises:
        ConfigError: The head's ``test_cfg`` has no ``nms``.
    """
    nms = (head.test_cfg or {}).get('nms')
    if nms is None:
        raise ConfigError("pseudo-labels take the NMS of the teacher's test_cfg, and the "
                          "teacher has none: set its model.test_cfg.nms, e.g. "
                          "dict(type='nms', iou_threshold=0.65).")
    return nms


@torch.no_grad()
def pseudo_bboxes_labels(head: nn.Module, preds: HeadOutputs, unlabeled: torch.Tensor,
                         score_thr: float, input_shape: Sequence[int]) -> torch.Tensor:
    """The teacher's boxes scoring above ``score_thr`` on the unlabeled images, as rows of
    mmyolo's fast YOLOv5 targets (``yolov5_collate``'s ``bboxes_labels``).

    Decoded and suppressed by the teacher head's own ``predict_by_feat`` (its NMS, one
    class per box: a box is one target), in the batch's pixel frame: the training
    targets' frame, not the original image's.

    Args:
        head (nn.Module): The teacher's mmyolo ``YOLOv5Head`` (its decoder and
            ``test_cfg.nms``).
        preds (tuple): The teacher's head outputs on the whole batch of N images (float32
            records, see :data:`HeadOutputs`).
        unlabeled (Tensor): Bool, shape (N,), True for images without labels.
        score_thr (float): Least score (objectness x class) of a kept box, in (0, 1).
        input_shape (Sequence[int]): The batch's (H, W) in pixels.

    Returns:
        Tensor: Shape (P, 6), float32: image index in the batch, class, x1, y1, x2, y2
        in pixels; at most :data:`MAX_PSEUDO_BOXES` per image, none for an image without
        a confident box (a background image).
    """
    cfg = ConfigDict(multi_label=False, score_thr=score_thr, nms=teacher_nms(head),
                     nms_pre=head.test_cfg.get('nms_pre', 30000),
                     max_per_img=MAX_PSEUDO_BOXES)
    index = unlabeled.nonzero().squeeze(1)
    if not len(index):  # torch.cat of no rows fails
        return preds[0][0].new_zeros((0, 6), dtype=torch.float32)
    cls, box, obj = ([level[index].float() for level in part] for part in preds)
    metas = [dict(ori_shape=tuple(input_shape), scale_factor=(1.0, 1.0))] * len(index)
    # decoding and NMS in float32 also under the training step's autocast (--amp)
    with torch.autocast(cls[0].device.type, enabled=False):
        results = head.predict_by_feat(cls, box, obj, batch_img_metas=metas, cfg=cfg,
                                       rescale=False)
    rows = [torch.cat([r.bboxes.new_full((len(r), 1), i), r.labels[:, None].float(),
                       r.bboxes], dim=1) for i, r in zip(index.tolist(), results)]
    return torch.cat(rows).float()


def with_pseudo_labels(data_samples: dict, head: nn.Module, preds: HeadOutputs,
                       unlabeled: torch.Tensor, score_thr: float,
                       input_shape: Sequence[int]) -> Tuple[dict, torch.Tensor]:
    """The batch's targets with the unlabeled images' pseudo boxes added.

    Args:
        data_samples (dict): ``bboxes_labels`` (B, 6) of the labeled images, as mmyolo's
            ``YOLOv5DetDataPreprocessor`` gives them; not changed.
        head, preds, unlabeled, score_thr, input_shape: As :func:`pseudo_bboxes_labels`.

    Returns:
        tuple: A new ``data_samples`` whose ``bboxes_labels`` (B + P, 6) are the labeled
        rows followed by the pseudo ones, and the number of pseudo boxes per unlabeled
        image (a float scalar tensor, for the log).
    """
    pseudo = pseudo_bboxes_labels(head, preds, unlabeled, score_thr, input_shape)
    boxes = data_samples['bboxes_labels']
    samples = dict(data_samples, bboxes_labels=torch.cat([boxes, pseudo.to(boxes)]))
    return samples, pseudo.new_tensor(len(pseudo) / max(int(unlabeled.sum()), 1))
