"""YOLOv5OutputDistillLoss: hand computations, bounds, and its behaviour in training."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd_yolo.losses import YOLOv5OutputDistillLoss
from mmkd_yolo.losses.yolov5_output_distill_loss import bernoulli_kl, decode_xywh

# one anchor per cell, anchors in grid units of each level
PRIORS = torch.tensor([[[1.0, 1.0]], [[2.0, 1.0]], [[1.0, 3.0]]])


def make_loss(**kwargs):
    loss = YOLOv5OutputDistillLoss(box_weight=0.05, obj_weight=1.0, cls_weight=0.5, **kwargs)
    loss.obj_level_weights = [4.0, 1.0, 0.4]
    loss.priors = PRIORS
    return loss


def random_preds(seed, n=2, nc=3, sizes=(8, 4, 2)):
    g = torch.Generator().manual_seed(seed)
    cls = [torch.randn(n, nc, s, s, generator=g) * 3 for s in sizes]
    box = [torch.randn(n, 4, s, s, generator=g) for s in sizes]
    obj = [torch.randn(n, 1, s, s, generator=g) * 3 for s in sizes]
    return cls, box, obj


def test_bernoulli_kl_by_hand():
    s, t = torch.tensor([2.0]), torch.tensor([0.0])
    p, q = 0.5, 1 / (1 + math.exp(-2.0))
    expected = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    assert bernoulli_kl(s, t).item() == pytest.approx(expected, rel=1e-5)
    assert bernoulli_kl(t, t).item() == pytest.approx(0.0, abs=1e-7)


def test_decode_matches_mmyolo_head():
    from mmyolo.models.dense_heads import YOLOv5Head
    raw = torch.randn(2, 1, 4, 3, 3)
    ours = decode_xywh(raw, PRIORS[1])  # (N, A, H, W, 4)
    flat = raw.permute(0, 1, 3, 4, 2).reshape(-1, 4)
    head_decode = YOLOv5Head._decode_bbox_to_xywh(None, flat, PRIORS[1].expand(len(flat), 2))
    assert torch.allclose(ours.reshape(-1, 4), head_decode, atol=1e-6)


def test_single_cell_by_hand():
    # one image, one cell per level, 2 classes; only level 0 differs
    loss = make_loss(loss_weight=1.0)
    s_cls = [torch.tensor([3.0, 0.0]).view(1, 2, 1, 1)] + [torch.zeros(1, 2, 1, 1)] * 2
    t_cls = [torch.zeros(1, 2, 1, 1)] * 3
    s_box = [torch.zeros(1, 4, 1, 1)] * 3
    t_box = [torch.zeros(1, 4, 1, 1)] * 3
    s_obj = [torch.tensor([1.0]).view(1, 1, 1, 1)] + [torch.zeros(1, 1, 1, 1)] * 2
    t_obj = [torch.zeros(1, 1, 1, 1)] * 3  # teacher confidence 0.5 everywhere
    out = loss((s_cls, s_box, s_obj), (t_cls, t_box, t_obj))
    kl = lambda s: bernoulli_kl(torch.tensor([s]), torch.tensor([0.0])).item()  # noqa: E731
    # obj: mean over the one cell x level weight 4 x obj weight 1
    assert out['obj'].item() == pytest.approx(kl(1.0) * 4.0, rel=1e-5)
    # cls: weight 0.5 normalised by max(sum w, 1) = 1: 0.5 * mean(kl(3), 0) x cls weight 0.5
    assert out['cls'].item() == pytest.approx(0.5 * (kl(3.0) / 2) * 0.5, rel=1e-5)
    # identical boxes: CIoU 1, no box loss
    assert out['box'].item() == pytest.approx(0.0, abs=1e-6)


def test_zero_when_student_equals_teacher_and_scaled_by_batch():
    preds = random_preds(0)
    out = make_loss()(preds, preds)
    assert all(v.item() == pytest.approx(0.0, abs=1e-5) for v in out.values())
    s, t = random_preds(1), random_preds(2)
    one = make_loss(loss_weight=1.0)(s, t)
    two = make_loss(loss_weight=2.0)(s, t)
    for key in one:
        assert two[key].item() == pytest.approx(2 * one[key].item(), rel=1e-5)
    # the batch factor mmyolo applies to the student loss: batch 2 of the same image pair
    s1 = tuple([x[:1] for x in part] for part in s)
    t1 = tuple([x[:1] for x in part] for part in t)
    s2 = tuple([torch.cat([x, x]) for x in part] for part in s1)
    t2 = tuple([torch.cat([x, x]) for x in part] for part in t1)
    single, double = make_loss()(s1, t1), make_loss()(s2, t2)
    for key in single:
        assert double[key].item() == pytest.approx(2 * single[key].item(), rel=1e-4)


def test_gradients_are_bounded_where_raw_mse_explodes():
    """Logits 50 apart: the obj gradient per logit stays below level weight x batch size /
    number of cells (mmyolo's batch factor; |sigmoid(s) - sigmoid(t)| <= 1)."""
    s = random_preds(3)
    t = tuple([x * 0 + 50.0 for x in part] for part in random_preds(4))
    s = tuple([x.clone().requires_grad_(True) for x in part] for part in s)
    out = make_loss(loss_weight=1.0)(s, t)
    sum(out.values()).backward()
    obj_grad = s[2][0].grad.abs().max().item()
    batch, cells = s[2][0].shape[0], s[2][0].numel()
    assert obj_grad <= 4.0 * batch / cells + 1e-6
    assert obj_grad > 0.5 * 4.0 * batch / cells  # saturated, yet not larger
    for part in s:
        for x in part:
            assert torch.isfinite(x.grad).all()


def test_temperature_softens_but_keeps_the_zero():
    preds = random_preds(5)
    assert make_loss(tau=2.0)(preds, preds)['obj'].item() == pytest.approx(0.0, abs=1e-5)
    s, t = random_preds(6), random_preds(7)
    assert make_loss(tau=2.0)(s, t)['cls'].item() != pytest.approx(
        make_loss(tau=1.0)(s, t)['cls'].item())


def test_needs_head_weights():
    loss = YOLOv5OutputDistillLoss()
    preds = random_preds(0)
    with pytest.raises(RuntimeError, match='inherit_head_weights'):
        loss(preds, preds)


def test_mismatched_shapes_are_named():
    s, t = random_preds(0, nc=3), random_preds(0, nc=4)
    with pytest.raises(ValueError, match='same anchors, classes'):
        make_loss()(s, t)


def test_bce_form_equals_kl_gradient():
    """The KL has BCE-against-teacher-probability's gradient (the entropy is constant)."""
    s = torch.randn(10, requires_grad=True)
    t = torch.randn(10)
    bernoulli_kl(s, t).sum().backward()
    g_kl = s.grad.clone()
    s.grad = None
    F.binary_cross_entropy_with_logits(s, t.sigmoid(), reduction='sum').backward()
    assert torch.allclose(g_kl, s.grad, atol=1e-6)


def test_closed_form_kl_values_and_gradcheck():
    """The closed form equals BCE(s, p_t) - BCE(t, p_t); its hand-written gradient passes
    autograd's numerical check, also with a temperature."""
    torch.manual_seed(0)
    s = (torch.randn(64, dtype=torch.float64) * 4).requires_grad_()
    t = torch.randn(64, dtype=torch.float64) * 4
    p = t.sigmoid()
    ref = (F.binary_cross_entropy_with_logits(s, p, reduction='none') -
           F.binary_cross_entropy_with_logits(t, p, reduction='none'))
    assert torch.allclose(bernoulli_kl(s, t), ref, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: bernoulli_kl(x, t, 2.0), (s, ))
