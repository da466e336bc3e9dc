"""YOLOv5MSEOutputDistillLoss against hand computations."""
import pytest
import torch

from mmkd_yolo.losses import YOLOv5MSEOutputDistillLoss


def to_mmyolo(p):
    """(N, A, H, W, 5 + nc) Ultralytics layout -> mmyolo head outputs of one level."""
    n, a, h, w, k = p.shape
    pm = p.permute(0, 1, 4, 2, 3)  # N, A, K, H, W as mmyolo's pred_map.view
    return (pm[:, :, 5:].reshape(n, a * (k - 5), h, w), pm[:, :, :4].reshape(n, a * 4, h, w),
            pm[:, :, 4].reshape(n, a, h, w))


def levels(*preds):
    parts = [to_mmyolo(p) for p in preds]
    return tuple([part[i] for part in parts] for i in range(3))


def reference(s_levels, t_levels, hyp, nc, d_weight):
    """compute_distillation_output_loss of the YOLOv5 distillation scripts."""
    lbox = lobj = lcls = torch.zeros(())
    for pi, t_pi in zip(s_levels, t_levels):
        t_obj_scale = t_pi[..., 4].sigmoid()
        b_obj_scale = t_obj_scale.unsqueeze(-1).repeat(1, 1, 1, 1, 4)
        lbox = lbox + torch.mean((pi[..., :4] - t_pi[..., :4])**2 * b_obj_scale)
        if nc > 1:
            c_obj_scale = t_obj_scale.unsqueeze(-1).repeat(1, 1, 1, 1, nc)
            lcls = lcls + torch.mean((pi[..., 5:] - t_pi[..., 5:])**2 * c_obj_scale)
        lobj = lobj + torch.mean((pi[..., 4] - t_pi[..., 4])**2 * t_obj_scale)
    bs = s_levels[0].shape[0]
    return (lbox * hyp['box'] * bs * d_weight, lobj * hyp['obj'] * bs * d_weight,
            lcls * hyp['cls'] * bs * d_weight)


def test_single_cell_by_hand():
    # one image, one anchor, one cell, 2 classes: [x, y, w, h, obj, c1, c2]
    s = torch.tensor([1., 0., 0., 0., 2., 3., 0.]).view(1, 1, 1, 1, 7)
    t = torch.zeros(1, 1, 1, 1, 7)  # teacher obj logit 0 -> weight 0.5
    loss = YOLOv5MSEOutputDistillLoss(loss_weight=1.0, box_weight=2.0, obj_weight=1.0,
                                   cls_weight=1.0)
    out = loss(levels(s), levels(t))
    assert out['box'].item() == pytest.approx(2.0 * (1.0 * 0.5) / 4)  # mean over 4 coords
    assert out['obj'].item() == pytest.approx(4.0 * 0.5)
    assert out['cls'].item() == pytest.approx((9.0 * 0.5) / 2)


@pytest.mark.parametrize('nc', [1, 3])
def test_matches_reference_script(nc):
    torch.manual_seed(0)
    shapes = [(2, 3, 8, 8, 5 + nc), (2, 3, 4, 4, 5 + nc), (2, 3, 2, 2, 5 + nc)]
    s = [torch.randn(sh) for sh in shapes]
    t = [torch.randn(sh) for sh in shapes]
    hyp = dict(box=0.05, obj=0.7, cls=0.3)
    loss = YOLOv5MSEOutputDistillLoss(loss_weight=10.0, box_weight=hyp['box'],
                                   obj_weight=hyp['obj'], cls_weight=hyp['cls'])
    out = loss(levels(*s), levels(*t))
    ref_box, ref_obj, ref_cls = reference(s, t, hyp, nc, d_weight=10.0)
    assert out['box'].item() == pytest.approx(ref_box.item(), rel=1e-5)
    assert out['obj'].item() == pytest.approx(ref_obj.item(), rel=1e-5)
    if nc > 1:
        assert out['cls'].item() == pytest.approx(ref_cls.item(), rel=1e-5)
    else:
        assert 'cls' not in out  # as the scripts: no class term for one class


def test_gradients_reach_student_only():
    torch.manual_seed(0)
    s = torch.randn(1, 3, 4, 4, 7, requires_grad=True)
    t = torch.randn(1, 3, 4, 4, 7, requires_grad=True)
    loss = YOLOv5MSEOutputDistillLoss(box_weight=1.0, obj_weight=1.0, cls_weight=1.0)
    sum(loss(levels(s), levels(t)).values()).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_identical_predictions_give_zero():
    t = torch.randn(2, 3, 4, 4, 8)
    loss = YOLOv5MSEOutputDistillLoss(box_weight=1.0, obj_weight=1.0, cls_weight=1.0)
    out = loss(levels(t.clone()), levels(t))
    assert all(v.item() == 0 for v in out.values())


def test_weights_from_student_head_and_missing_weights():
    loss = YOLOv5MSEOutputDistillLoss()
    t = torch.randn(1, 3, 2, 2, 7)
    with pytest.raises(RuntimeError, match='weights'):
        loss(levels(t), levels(t))

    class W:
        def __init__(self, w):
            self.loss_weight = w

    class Head:
        loss_bbox, loss_obj, loss_cls = W(0.05), W(1.0), W(0.0125)

    loss.inherit_head_weights(Head())
    assert (loss.box_weight, loss.obj_weight, loss.cls_weight) == (0.05, 1.0, 0.0125)


def test_shape_mismatch_is_named():
    loss = YOLOv5MSEOutputDistillLoss(box_weight=1.0, obj_weight=1.0, cls_weight=1.0)
    with pytest.raises(ValueError, match='level 0'):
        loss(levels(torch.randn(1, 3, 4, 4, 7)), levels(torch.randn(1, 3, 4, 4, 8)))
