"""YOLOv5Distill with pseudo-labels: the student's detection loss covers the unlabeled images,
against the teacher's confident boxes from this step's recorded head outputs."""
import copy

import pytest
import torch
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from mmkd_yolo.algorithms import YOLOv5Distill
from mmkd_yolo.errors import ConfigError
from mmkd_yolo.registry import MODELS

from ..conftest import KD_OUT_N2N

SIZE = 64
UNLABELED = torch.tensor([False, False, False, False, True, True])
LABELED_BOXES = torch.tensor([[i, i % 2, 8., 8., 40., 48.] for i in range(4)])


@pytest.fixture(scope='module')
def model():
    """The n-to-n distiller with pseudo-labels above 0.5, its BatchNorm frozen (so the
    labeled images' outputs do not depend on the other images of the batch), and a
    teacher confident of one class at one prior of its stride-32 level: boxes on every
    image, placed by its content."""
    cfg = Config.fromfile(KD_OUT_N2N)
    model = MODELS.build(dict(copy.deepcopy(cfg.model), teacher_precision='fp32',
                              pseudo_label_score_thr=0.5))
    model.train()
    for module in model.student.modules():
        if isinstance(module, _BatchNorm):
            module.eval()
    with torch.no_grad():
        # per prior: 4 box, 1 objectness, then class logits
        last = model.teacher.bbox_head.head_module.convs_pred[2].bias
        last[4] = 8.0
        last[5] = 8.0
    return model


def batch():
    """6 images, the last two unlabeled, and their samples."""
    inputs = torch.rand(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    return inputs, dict(bboxes_labels=LABELED_BOXES.clone(),
                        img_metas=[dict(batch_input_shape=(SIZE, SIZE))] * 6,
                        unlabeled=UNLABELED.clone())


def targets_seen(model, run):
    """The ``bboxes_labels`` the student's YOLOv5 loss receives during ``run()`` (copied
    on entry: mmyolo normalises them in place)."""
    head, seen = model.student.bbox_head, []
    original = head.loss_by_feat

    def spy(*args, **kwargs):
        seen.append(args[3].clone())
        return original(*args, **kwargs)

    head.loss_by_feat = spy
    try:
        run()
    finally:
        del head.loss_by_feat
    return seen


def detection_grads(model, inputs, samples):
    """Gradient of the student's detection loss w.r.t. its view, per image: norm (N,)."""
    view = inputs.clone().requires_grad_()
    losses = model.loss(inputs, dict(samples, student_inputs=view))
    loss = sum(v.sum() for k, v in losses.items() if k.startswith('student.loss'))
    (grad, ) = torch.autograd.grad(loss, view)
    return grad.flatten(1).norm(dim=1)


def test_unlabeled_images_enter_the_detection_loss_with_pseudo_labels_only(model):
    """With pseudo-labels the student's detection loss depends on the unlabeled images'
    content (its gradient reaches them); without (the control, today's recipe) it is
    blind to them: exactly zero gradient, BatchNorm being frozen."""
    with_pl = detection_grads(model, *batch())
    # an unlabeled image pulls on the student about as hard as a labeled one
    assert (with_pl[4:] / with_pl[:4].mean()).min() > 0.3
    model.pseudo_label_score_thr = None
    try:
        without = detection_grads(model, *batch())
    finally:
        model.pseudo_label_score_thr = 0.5
    assert without[:4].min() > 0 and without[4:].abs().max() == 0


def test_the_student_learns_the_labeled_boxes_and_the_teachers_on_unlabeled_images(model):
    inputs, samples = batch()
    losses = {}
    seen = targets_seen(model, lambda: losses.update(model.loss(inputs, samples)))
    (targets, ) = seen
    assert torch.equal(targets[:4], LABELED_BOXES)  # the labeled rows, untouched
    pseudo = targets[4:]
    assert len(pseudo) >= 2 and set(pseudo[:, 0].tolist()) == {4, 5}
    # the teacher's own decoding of its head outputs on the unlabeled images
    with torch.no_grad():
        outs = model.teacher._forward(inputs[4:])
    metas = [dict(ori_shape=(SIZE, SIZE), scale_factor=(1.0, 1.0))] * 2
    cfg = dict(model.teacher.bbox_head.test_cfg, score_thr=0.5, multi_label=False,
               max_per_img=100)
    results = model.teacher.bbox_head.predict_by_feat(
        *[[t.float() for t in part] for part in outs], batch_img_metas=metas,
        cfg=Config(cfg), rescale=False)
    expected = torch.cat([torch.cat([r.bboxes.new_full((len(r), 1), 4 + i),
                                     r.labels[:, None].float(), r.bboxes], 1)
                          for i, r in enumerate(results)])
    assert torch.allclose(pseudo, expected, atol=1e-3)
    assert losses['data.pseudo_boxes'].item() == len(pseudo) / 2
    assert torch.equal(samples['bboxes_labels'], LABELED_BOXES)  # the caller's as given


def test_without_unlabeled_images_nothing_changes(model):
    inputs, samples = batch()
    labeled = dict(samples, unlabeled=torch.zeros(6, dtype=torch.bool))
    losses = {}
    (targets, ) = targets_seen(model, lambda: losses.update(model.loss(inputs, labeled)))
    assert 'data.pseudo_boxes' not in losses and losses['data.unlabeled'].item() == 0
    assert torch.equal(targets, LABELED_BOXES)


def test_once_distillation_stops_no_pseudo_box_is_made(model):
    """The unlabeled rows are left out of the batch: no teacher forward, no pseudo box,
    the student's detection loss on the labeled images and their targets alone."""
    inputs, samples = batch()
    losses = {}
    seen_inputs = []
    hook = model.student.backbone.register_forward_pre_hook(
        lambda module, args: seen_inputs.append(args[0].shape[0]))
    model.distillation_stopped = True
    try:
        (targets, ) = targets_seen(model, lambda: losses.update(model.loss(inputs, samples)))
    finally:
        model.distillation_stopped = False
        hook.remove()
    assert seen_inputs == [4]
    assert torch.equal(targets, LABELED_BOXES)
    assert 'data.pseudo_boxes' not in losses
    assert losses['data.unlabeled'].item() == 0 and losses['data.labeled'].item() == 4
    assert not any(k.startswith('distill.') for k in losses)


def test_a_teacher_without_nms_is_named_at_build():
    """Was: found at the first training step."""
    from mmengine.config import ConfigDict

    from mmkd_yolo.models.detector_cfg import resolve_detector_cfg
    cfg = Config.fromfile(KD_OUT_N2N).model
    teacher = MODELS.build(resolve_detector_cfg(cfg.teacher))
    teacher.bbox_head.test_cfg = ConfigDict(score_thr=0.001)
    with pytest.raises(ConfigError, match='the teacher has none: set its model.test_cfg.nms'):
        MODELS.build(dict(copy.deepcopy(cfg), teacher=teacher, pseudo_label_score_thr=0.5,
                          teacher_precision='fp32'))


@pytest.mark.parametrize('score', [0.0, 1.0, 1.5, float('nan')])
def test_pseudo_label_score_must_be_in_the_open_unit_interval(score):
    """The message of --unlabeled-pseudo-labels (tests/test_apis/test_unlabeled.py): one
    check for both."""
    with pytest.raises(ConfigError, match=rf'pseudo_label_score_thr {score} '
                       r'\(--unlabeled-pseudo-labels\) is not in \(0, 1\)'):
        YOLOv5Distill(architecture={}, teacher={}, distiller={}, pseudo_label_score_thr=score)
