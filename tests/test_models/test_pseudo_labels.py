"""Pseudo-labels: the teacher's confident boxes on unlabeled images as YOLOv5 targets, checked
against mmyolo's own ``predict_by_feat`` on constructed head outputs."""
import pytest
import torch
from mmrazor.models.task_modules.recorder import ModuleOutputsRecorder

from mmkd_yolo.errors import ConfigError
from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.models.pseudo_labels import (head_outputs_recorder, pseudo_bboxes_labels,
                                            with_pseudo_labels)
from mmkd_yolo.registry import MODELS

from ..conftest import TEACHER_S

SIZE = 64
UNLABELED = torch.tensor([False, True, True])
#: the one confident box: image 2, level 1 (stride 16), prior 1, cell (row 1, column 2),
#: class 5; objectness and class logits 4 (score sigmoid(4)^2 = 0.93)
IMG, LEVEL, PRIOR, ROW, COL, CLS, LOGIT = 2, 1, 1, 1, 2, 5, 4.0


@pytest.fixture(scope='module')
def head():
    return MODELS.build(load_detector_cfg(TEACHER_S)).bbox_head


def head_outputs(head, confident_images=(IMG, )):
    """Head outputs of a batch of 3 (N, A * C, H, W) etc. at 64 px: every logit -12 but
    the one box's, on each of ``confident_images``."""
    n, a, c = len(UNLABELED), head.num_base_priors, head.num_classes
    sizes = [SIZE // s for s in (8, 16, 32)]
    cls = [torch.full((n, a * c, s, s), -12.0) for s in sizes]
    box = [torch.zeros(n, a * 4, s, s) for s in sizes]
    obj = [torch.full((n, a, s, s), -12.0) for s in sizes]
    for i in confident_images:
        obj[LEVEL][i, PRIOR, ROW, COL] = LOGIT
        cls[LEVEL][i, PRIOR * c + CLS, ROW, COL] = LOGIT
        box[LEVEL][i, PRIOR * 4:PRIOR * 4 + 4, ROW, COL] = torch.tensor([0.2, -0.1, 0.3, 0.1])
    return cls, box, obj


def mmyolo_boxes(head, preds, i):
    """mmyolo's own decoding of image ``i`` (its test_cfg: every box above 0.001), in the
    input's pixel frame."""
    one = tuple([level[i:i + 1] for level in part] for part in preds)
    meta = dict(ori_shape=(SIZE, SIZE), scale_factor=(1.0, 1.0))
    return head.predict_by_feat(*one, batch_img_metas=[meta], rescale=False)[0]


def test_the_confident_box_in_pixels_and_class_as_mmyolo_decodes_it(head):
    preds = head_outputs(head)
    rows = pseudo_bboxes_labels(head, preds, UNLABELED, 0.5, (SIZE, SIZE))
    reference = mmyolo_boxes(head, preds, IMG)
    top = reference.scores.argmax()
    assert reference.scores[top] > 0.9
    assert rows.shape == (1, 6) and rows.dtype == torch.float32
    assert rows[0, :2].tolist() == [IMG, CLS]
    assert rows[0, 1] == reference.labels[top]
    assert torch.allclose(rows[0, 2:], reference.bboxes[top], atol=1e-4)
    # in the cell that predicted it, at stride 16, in pixels (not normalised)
    cx, cy = (rows[0, 2] + rows[0, 4]) / 2, (rows[0, 3] + rows[0, 5]) / 2
    assert abs(cx - (COL + 0.5) * 16) < 16 and abs(cy - (ROW + 0.5) * 16) < 16
    assert rows[0, 4] - rows[0, 2] > 4 and rows[0, 5] - rows[0, 3] > 4


def test_no_box_above_the_score_no_row(head):
    preds = head_outputs(head)
    score = mmyolo_boxes(head, preds, IMG).scores.max().item()
    assert len(pseudo_bboxes_labels(head, preds, UNLABELED, score - 0.01, (SIZE, SIZE))) == 1
    none = pseudo_bboxes_labels(head, preds, UNLABELED, score + 0.01, (SIZE, SIZE))
    assert none.shape == (0, 6)


def test_labeled_images_get_no_pseudo_box_and_keep_their_targets(head):
    """A confident box on labeled image 0 and on unlabeled image 2: only image 2's is
    added, after the labeled rows, which are not changed."""
    preds = head_outputs(head, confident_images=(0, IMG))
    labeled = torch.tensor([[0, 3, 10., 12., 30., 40.], [0, 1, 2., 2., 9., 9.]])
    samples = dict(bboxes_labels=labeled.clone(), img_metas=['m'] * 3, unlabeled=UNLABELED)
    new, per_image = with_pseudo_labels(samples, head, preds, UNLABELED, 0.5, (SIZE, SIZE))
    assert torch.equal(new['bboxes_labels'][:2], labeled)
    assert new['bboxes_labels'][2:, :2].tolist() == [[IMG, CLS]]
    assert per_image.item() == 0.5  # one box, two unlabeled images
    assert torch.equal(samples['bboxes_labels'], labeled)  # the caller's samples as given
    assert new['img_metas'] == samples['img_metas']


def test_the_teacher_head_recorder_is_found_or_its_absence_named():
    recorders = dict(neck0=ModuleOutputsRecorder('neck.out_layers.0'),
                     preds=ModuleOutputsRecorder('bbox_head.head_module'))
    assert head_outputs_recorder(recorders) == 'preds'
    del recorders['preds']
    with pytest.raises(ConfigError, match=r"no teacher recorder records "
                       r"'bbox_head.head_module': add preds=dict\(type='ModuleOutputs'"):
        head_outputs_recorder(recorders)


def test_a_teacher_without_nms_is_named(head):
    saved = head.test_cfg
    head.test_cfg = dict(score_thr=0.001)
    try:
        with pytest.raises(ConfigError, match='set its model.test_cfg.nms'):
            pseudo_bboxes_labels(head, head_outputs(head), UNLABELED, 0.5, (SIZE, SIZE))
    finally:
        head.test_cfg = saved


def test_no_unlabeled_image_no_row(head):
    """An all-False mask (was: torch.cat of no rows failed)."""
    none = torch.zeros(3, dtype=torch.bool)
    rows = pseudo_bboxes_labels(head, head_outputs(head), none, 0.5, (SIZE, SIZE))
    assert rows.shape == (0, 6) and rows.dtype == torch.float32
    labeled = torch.tensor([[0, 3, 10., 12., 30., 40.]])
    new, per_image = with_pseudo_labels(dict(bboxes_labels=labeled), head, head_outputs(head),
                                        none, 0.5, (SIZE, SIZE))
    assert torch.equal(new['bboxes_labels'], labeled) and per_image.item() == 0


def localising_outputs(head, box, confident, height, width):
    """Head outputs (one image, ``height`` x ``width``) of a teacher that localises one
    object: every prior of every cell predicts ``box`` (cx, cy, w, h in pixels) as near
    as its range allows (raw outputs found by inverting YOLOv5's decoding), and only the
    ``confident`` (level, prior, row, column) is sure of it (class 0)."""
    cx, cy, bw, bh = box
    a, c = head.num_base_priors, head.num_classes
    cls, boxes, obj = [], [], []
    for level, stride in enumerate(head.featmap_strides):
        h, w = height // stride, width // stride
        rows = torch.arange(h, dtype=torch.float32).view(h, 1).expand(h, w)
        cols = torch.arange(w, dtype=torch.float32).view(1, w).expand(h, w)
        raw = torch.zeros(1, a * 4, h, w)
        for p, (aw, ah) in enumerate(head.prior_generator.base_sizes[level]):
            # x = stride * (2 sigmoid(t) - 0.5 + col); w = anchor * (2 sigmoid(t))^2
            sig = torch.stack([(cx / stride - cols + 0.5) / 2, (cy / stride - rows + 0.5) / 2,
                               torch.full((h, w), (bw / aw)**0.5 / 2),
                               torch.full((h, w), (bh / ah)**0.5 / 2)])
            raw[0, p * 4:p * 4 + 4] = torch.logit(sig.clamp(1e-4, 1 - 1e-4))
        boxes.append(raw)
        cls.append(torch.full((1, a * c, h, w), -12.0))
        obj.append(torch.full((1, a, h, w), -12.0))
    level, prior, row, col = confident
    obj[level][0, prior, row, col] = 8.0
    cls[level][0, prior * c, row, col] = 8.0
    return cls, boxes, obj


def test_pseudo_boxes_are_in_the_frame_of_the_students_loss(head):
    """The frame checked by the loss, not by the decoding: a non-square batch (64 x 96,
    so height and width cannot be swapped unseen), the box near the right edge (a
    height taken for the width clips it). The teacher's pseudo box as the target of a
    student with the teacher's outputs: the student's box loss is its own prediction's
    (near zero); the box a quarter of the width to the left, far from zero."""
    height, width = 64, 96
    preds = localising_outputs(head, (80., 32., 24., 30.), (0, 1, 4, 10), height, width)
    rows = pseudo_bboxes_labels(head, preds, torch.tensor([True]), 0.5, (height, width))
    assert rows.shape == (1, 6) and rows[0, :2].tolist() == [0, 0]
    assert torch.allclose(rows[0, 2:], torch.tensor([68., 17., 92., 47.]), atol=0.1)

    def loss_bbox(targets):  # a copy: mmyolo normalises the targets in place
        metas = [dict(batch_input_shape=(height, width))]
        return head.loss_by_feat(*preds, targets.clone(), metas)['loss_bbox'].item()

    shifted = rows.clone()
    shifted[:, [2, 4]] -= width / 4
    matched, off = loss_bbox(rows), loss_bbox(shifted)
    assert off > 0.02, off
    assert matched < 0.1 * off, (matched, off)
