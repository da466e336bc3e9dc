"""YOLOv5OutputDistillLoss: hand computations, bounds, and its behaviour in training."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd_yolo.losses import YOLOv5OutputDistillLoss
from mmkd_yolo.losses.yolov5_output_distill_loss import (ciou_xywh, decode_xywh,
                                                          weighted_bernoulli_kl)

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
    as_cells = lambda x: x.view(1, 1, 1, 1)  # noqa: E731
    assert weighted_bernoulli_kl(as_cells(s), as_cells(t)).item() == pytest.approx(
        expected, rel=1e-5)
    assert weighted_bernoulli_kl(as_cells(t), as_cells(t)).item() == pytest.approx(0.0, abs=1e-7)


def test_decode_matches_mmyolo_head():
    from mmyolo.models.dense_heads import YOLOv5Head
    raw = torch.randn(2, 1, 4, 3, 3)
    ours = torch.stack(decode_xywh(raw, PRIORS[1]), dim=-1)  # (N, A, H, W, 4)
    flat = raw.permute(0, 1, 3, 4, 2).reshape(-1, 4)
    head_decode = YOLOv5Head._decode_bbox_to_xywh(None, flat, PRIORS[1].expand(len(flat), 2))
    assert torch.allclose(ours.reshape(-1, 4), head_decode, atol=1e-6)


def test_ciou_equals_mmyolos_in_value_and_gradient():
    """The coordinate-wise CIoU is mmyolo's ``bbox_overlaps(ciou, xywh)``: same values and
    gradients (float64), overlapping, disjoint, nested and degenerate (near-empty, far
    apart: clamped at -1) boxes alike."""
    from mmyolo.models.losses import bbox_overlaps
    g = torch.Generator().manual_seed(0)
    xy = torch.randn(2, 500, generator=g, dtype=torch.float64)
    wh = torch.rand(2, 500, generator=g, dtype=torch.float64) * 3 + 0.05
    wh[:, :20] = torch.rand(2, 20, generator=g, dtype=torch.float64) * 1e-6
    pred = torch.cat((xy, wh)).requires_grad_()
    target = torch.cat((xy * 0.7 + 0.2, wh * torch.rand(2, 500, generator=g,
                                                        dtype=torch.float64) * 2))
    ours = ciou_xywh(tuple(pred), tuple(target))
    theirs = bbox_overlaps(pred.T, target.T, iou_mode='ciou', bbox_format='xywh')
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12)
    weights = torch.rand(500, generator=g, dtype=torch.float64)
    grad_ours, = torch.autograd.grad((ours * weights).sum(), pred)
    grad_theirs, = torch.autograd.grad((theirs * weights).sum(), pred)
    assert torch.allclose(grad_ours, grad_theirs, rtol=0, atol=1e-12)
    assert (ours < 0).any() and (ours > 0.5).any()  # disjoint and well-overlapping pairs
    assert (ours == -1).any()  # the clamp


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
    def kl(s):  # KL(Bernoulli(0.5) || Bernoulli(sigmoid(s))), written out
        q = 1 / (1 + math.exp(-s))
        return 0.5 * math.log(0.5 / q) + 0.5 * math.log(0.5 / (1 - q))

    # obj: mean over the one cell x level weight 4 x obj weight 1
    assert out['obj'].item() == pytest.approx(kl(1.0) * 4.0, rel=1e-5)
    # cls: weight 0.5 normalised by max(sum w, 1) = 1: 0.5 * mean(kl(3), 0) x cls weight 0.5
    assert out['cls'].item() == pytest.approx(0.5 * (kl(3.0) / 2) * 0.5, rel=1e-5)
    # identical boxes: CIoU 1, no box loss
    assert out['box'].item() == pytest.approx(0.0, abs=1e-6)


def _bernoulli_kl(p, q):
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def test_box_part_by_hand():
    """Level 0 boxes differ: (1 - CIoU) of the decoded boxes, CIoU from mmyolo's own
    ``bbox_overlaps``, weighted by the teacher's confidence, times the box weight."""
    from mmyolo.models.losses import bbox_overlaps
    loss = make_loss(loss_weight=1.0)
    s_raw, t_raw = [0.0, 0.0, 0.0, 0.0], [1.0, -0.5, 0.3, 0.2]
    s_box = [torch.tensor(s_raw).view(1, 4, 1, 1)] + [torch.zeros(1, 4, 1, 1)] * 2
    t_box = [torch.tensor(t_raw).view(1, 4, 1, 1)] + [torch.zeros(1, 4, 1, 1)] * 2
    zeros_cls = [torch.zeros(1, 2, 1, 1)] * 3
    obj = [torch.full((1, 1, 1, 1), 2.0)] * 3  # teacher confidence sigmoid(2) = 0.881
    out = loss((zeros_cls, s_box, obj), (zeros_cls, t_box, obj))

    def decode(raw, prior):  # YOLOv5's decoding, written out (grid units, xywh)
        sig = [1 / (1 + math.exp(-v)) for v in raw]
        return [2 * sig[0] - 0.5, 2 * sig[1] - 0.5, (2 * sig[2])**2 * prior[0],
                (2 * sig[3])**2 * prior[1]]

    prior = PRIORS[0, 0].tolist()
    ciou = bbox_overlaps(torch.tensor([decode(s_raw, prior)], dtype=torch.float64),
                         torch.tensor([decode(t_raw, prior)], dtype=torch.float64),
                         iou_mode='ciou', bbox_format='xywh').item()
    w = 1 / (1 + math.exp(-2.0))
    assert 0.2 < 1 - ciou < 1.5  # boxes far enough apart for the number to mean something
    # sum(w * (1 - CIoU)) / max(sum w, 1) = w * (1 - CIoU) (w < 1), x box weight 0.05
    assert out['box'].item() == pytest.approx(w * (1 - ciou) * 0.05, rel=1e-5)
    assert out['obj'].item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize('tau', [1.0, 2.0, 4.0])
def test_temperature_scaling_by_hand(tau):
    """KL of the logits divided by tau, multiplied back by tau**2 (Hinton et al.)."""
    loss = make_loss(tau=tau)
    s_cls = [torch.tensor([3.0, -1.0]).view(1, 2, 1, 1)] + [torch.zeros(1, 2, 1, 1)] * 2
    t_cls = [torch.tensor([0.0, 1.0]).view(1, 2, 1, 1)] + [torch.zeros(1, 2, 1, 1)] * 2
    box = [torch.zeros(1, 4, 1, 1)] * 3
    s_obj = [torch.tensor([2.0]).view(1, 1, 1, 1)] + [torch.zeros(1, 1, 1, 1)] * 2
    t_obj = [torch.zeros(1, 1, 1, 1)] * 3
    out = loss((s_cls, box, s_obj), (t_cls, box, t_obj))
    sig = lambda x: 1 / (1 + math.exp(-x / tau))  # noqa: E731
    # obj: one cell, level weight 4, obj weight 1
    assert out['obj'].item() == pytest.approx(
        _bernoulli_kl(sig(0.0), sig(2.0)) * tau**2 * 4.0, rel=1e-5)
    # cls: teacher weight sigmoid(0) = 0.5 (not tempered), mean over 2 classes, cls weight 0.5
    kl_cls = (_bernoulli_kl(sig(0.0), sig(3.0)) + _bernoulli_kl(sig(1.0), sig(-1.0))) / 2
    assert out['cls'].item() == pytest.approx(0.5 * kl_cls * tau**2 * 0.5, rel=1e-5)


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


def reference_kl(s, t, tau=1.0):
    """BCE(s, p_t) - BCE(t, p_t) element-wise, through autograd: what the fused form must
    equal, in value and gradient."""
    p = (t / tau).sigmoid()
    return (F.binary_cross_entropy_with_logits(s / tau, p, reduction='none') -
            F.binary_cross_entropy_with_logits(t / tau, p, reduction='none'))


@pytest.mark.parametrize('tau', [1.0, 2.0])
@pytest.mark.parametrize('weighted', [True, False])
def test_weighted_kl_equals_the_bce_form_in_value_and_gradient(tau, weighted):
    """Value and hand-written gradient equal autograd through the BCE form (float64),
    with per-cell weights shared by the classes of a cell, and with a temperature;
    logits as far out as +-40 included."""
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(3, 2, 5, 7, generator=g, dtype=torch.float64) * 15).clamp(-40, 40)
    t = (torch.randn(3, 2, 5, 7, generator=g, dtype=torch.float64) * 15).clamp(-40, 40)
    w = torch.rand(3, 2, 1, 7, generator=g, dtype=torch.float64) if weighted else None
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    ours = weighted_bernoulli_kl(s1, t, w, tau) * 3.0  # an outer factor, as in the loss
    ref = reference_kl(s2, t, tau)
    ref = (ref * w).sum() * 3.0 if weighted else ref.sum() * 3.0
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    ours.backward()
    ref.backward()
    assert torch.allclose(s1.grad, s2.grad, rtol=1e-10, atol=1e-12)


def test_weighted_kl_stays_float32_under_autocast():
    """Under bfloat16 autocast (--amp on CPU) the weighted sum, a matmul, stays float32."""
    g = torch.Generator().manual_seed(0)
    s, t = (torch.randn(2, 3, 80, 50, generator=g) * 4 for _ in range(2))
    w = torch.rand(2, 3, 1, 50, generator=g)
    ref = weighted_bernoulli_kl(s, t, w)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        value = weighted_bernoulli_kl(s, t, w)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(ref.item(), rel=1e-6)


def test_weighted_kl_far_logits_stay_finite_with_the_exact_gradient():
    """Logits below the clamp (-80: sigmoid 1.8e-35, float32) give a finite value and
    still the exact gradient sigmoid(s) - sigmoid(t)."""
    s = torch.tensor([-200.0, -90.0, 50.0, 0.0]).view(1, 1, 4, 1).requires_grad_()
    t = torch.tensor([0.0, -200.0, -100.0, 3.0]).view(1, 1, 4, 1)
    value = weighted_bernoulli_kl(s, t)
    assert torch.isfinite(value)
    value.backward()
    assert torch.allclose(s.grad, s.detach().sigmoid() - t.sigmoid(), atol=1e-7)


def test_weighted_kl_twice_through_one_graph_fails_loudly():
    """The gradient is computed in the forward pass and scaled in place by the backward:
    a second backward must fail, not return a twice-scaled gradient."""
    s = torch.randn(2, 1, 3, 4, requires_grad=True)
    loss = weighted_bernoulli_kl(s, torch.randn(2, 1, 3, 4)) * 2
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='inplace'):
        loss.backward()
