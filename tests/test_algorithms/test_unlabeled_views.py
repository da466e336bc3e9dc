"""Unlabeled images at equal compute: the student's own view of them (two views) and their
own weight in the output-distillation loss."""
import copy

import pytest
import torch
from mmengine.config import Config

from mmkd_yolo.algorithms import YOLOv5Distill
from mmkd_yolo.errors import ConfigError
from mmkd_yolo.losses import YOLOv5MSEOutputDistillLoss, YOLOv5OutputDistillLoss
from mmkd_yolo.models import YOLOv5UnlabeledDataPreprocessor
from mmkd_yolo.models.mixed_batch import image_weights_set
from mmkd_yolo.registry import MODELS

from ..conftest import KD_OUT_N2N

SIZE = 64
UNLABELED = torch.tensor([False, False, False, False, True, True])
#: every part of the augmentation off but the cutout: its pixels are known exactly
CUTOUT_ONLY = dict(type='mmkd_yolo.UnlabeledPhotometricAug', jitter_prob=0.0, blur_prob=0.0,
                   noise_prob=0.0, cutout_prob=1.0)


# --- the preprocessor makes the student's view ------------------------------------------
def collated(unlabeled, seed=0):
    """A batch as ``yolov5_unlabeled_collate`` gives it: uint8 BGR images, boxes on the
    labeled ones."""
    g = torch.Generator().manual_seed(seed)
    n = len(unlabeled)
    boxes = torch.tensor([[i, 0, 4., 4., 20., 20.] for i in range(n) if not unlabeled[i]])
    return dict(inputs=torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                data_samples=dict(bboxes_labels=boxes, unlabeled=unlabeled.clone()))


def test_student_view_augments_the_unlabeled_rows_in_pixel_space():
    """The augmentation sees pixel values: a cut-out pixel is grey 114 before the
    preprocessor's own normalisation (here not YOLOv5's mean 0, std 255), every other
    pixel and every labeled row is the teacher's."""
    mean, std = torch.tensor([10., 20., 30.]), torch.tensor([50., 60., 70.])
    prep = YOLOv5UnlabeledDataPreprocessor(mean=mean.tolist(), std=std.tolist(),
                                           bgr_to_rgb=True, student_aug=CUTOUT_ONLY)
    unlabeled = torch.tensor([False, True, False, True])
    torch.manual_seed(0)
    out = prep(collated(unlabeled), True)
    inputs, student = out['inputs'], out['data_samples']['student_inputs']
    assert student.shape == inputs.shape
    assert torch.equal(student[~unlabeled], inputs[~unlabeled])
    grey = ((114 - mean) / std).view(1, 3, 1, 1)
    cut = (student[unlabeled] == grey).all(1)  # (2, H, W)
    assert (cut.flatten(1).sum(1) >= 2 * 2).all()  # a rectangle in each unlabeled image
    kept = ~cut.unsqueeze(1).expand(-1, 3, -1, -1)
    assert torch.allclose(student[unlabeled][kept], inputs[unlabeled][kept], atol=1e-5)
    assert torch.equal(out['data_samples']['unlabeled'], unlabeled)


def test_student_view_in_float32_under_autocast():
    """--amp: mmengine runs the preprocessor inside the optim wrapper's autocast; the
    augmentation's matmul and convolution ran in half precision and returned half."""
    aug = dict(type='mmkd_yolo.UnlabeledPhotometricAug', jitter_prob=1.0, blur_prob=1.0,
               noise_prob=0.0, cutout_prob=0.0)
    prep = YOLOv5UnlabeledDataPreprocessor(mean=[0.] * 3, std=[255.] * 3, bgr_to_rgb=True,
                                           student_aug=aug)
    torch.manual_seed(0)
    out = prep(collated(UNLABELED), True)
    plain = out['data_samples']['student_inputs']
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        amp = prep(collated(UNLABELED), True)['data_samples']['student_inputs']
    assert amp.dtype == torch.float32
    assert (plain[4:] - out['inputs'][4:]).abs().mean() > 0.01
    assert torch.equal(amp, plain)


def test_student_aug_may_name_its_scope():
    """A ``student_aug`` with its own ``_scope_`` (was: a TypeError, the key given
    twice)."""
    aug = dict(CUTOUT_ONLY, type='UnlabeledPhotometricAug', _scope_='mmkd_yolo')
    prep = YOLOv5UnlabeledDataPreprocessor(mean=[0.] * 3, std=[255.] * 3, student_aug=aug)
    assert type(prep.student_aug).__name__ == 'UnlabeledPhotometricAug'
    assert aug['_scope_'] == 'mmkd_yolo' and 'cutout_prob' in aug  # the config as given


def test_one_view_without_student_aug_unlabeled_images_or_training():
    plain = YOLOv5UnlabeledDataPreprocessor(mean=[0.] * 3, std=[255.] * 3)
    assert 'student_inputs' not in plain(collated(UNLABELED), True)['data_samples']
    prep = YOLOv5UnlabeledDataPreprocessor(mean=[0.] * 3, std=[255.] * 3,
                                           student_aug=CUTOUT_ONLY)
    assert 'student_inputs' not in prep(collated(torch.zeros(4).bool()), True)['data_samples']
    assert 'student_inputs' in prep(collated(UNLABELED), True)['data_samples']
    assert prep.state_dict().keys() == plain.state_dict().keys()  # checkpoints unchanged


# --- the distiller: teacher and student each get their view ------------------------------
@pytest.fixture(scope='module')
def model():
    cfg = Config.fromfile(KD_OUT_N2N)
    model = MODELS.build(dict(copy.deepcopy(cfg.model), teacher_precision='fp32'))
    model.train()
    return model


def mixed_batch(seed=0):
    """6 images, the last two unlabeled, and the student's view: those two changed."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.rand(6, 3, SIZE, SIZE, generator=g)
    boxes = torch.tensor([[i, i % 2, 8., 8., 40., 48.] for i in range(4)])
    samples = dict(bboxes_labels=boxes, img_metas=[dict(batch_input_shape=(SIZE, SIZE))] * 6,
                   unlabeled=UNLABELED.clone())
    student = inputs.clone()
    student[4:] = 1 - student[4:]
    return inputs, samples, student


def backbone_inputs(model, run):
    """What the teacher's and the student's backbones receive during ``run()``."""
    seen = {'teacher': [], 'student': []}
    hooks = [getattr(model, role).backbone.register_forward_pre_hook(
        lambda module, args, role=role: seen[role].append(
            args[0].detach().float().contiguous().clone())) for role in seen]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def test_teacher_sees_the_batch_the_student_its_own_view(model):
    inputs, samples, student = mixed_batch()
    given = dict(samples, student_inputs=student)
    seen = backbone_inputs(model, lambda: model.loss(inputs, given))
    (teacher_saw, ), (student_saw, ) = seen['teacher'], seen['student']
    assert torch.equal(teacher_saw, inputs)
    assert torch.equal(student_saw, student)
    assert torch.equal(teacher_saw[:4], student_saw[:4])  # labeled rows: one view
    assert (teacher_saw[4:] - student_saw[4:]).abs().mean() > 0.2
    assert 'student_inputs' in given  # the caller's samples are left as they were


def test_once_distillation_stops_the_student_sees_the_labeled_rows_only(model):
    inputs, samples, student = mixed_batch()
    model.distillation_stopped = True
    try:
        seen = backbone_inputs(
            model, lambda: model.loss(inputs, dict(samples, student_inputs=student)))
    finally:
        model.distillation_stopped = False
    assert seen['teacher'] == []
    (student_saw, ) = seen['student']
    assert torch.equal(student_saw, inputs[:4])


# --- the unlabeled images' weight -------------------------------------------------------
PRIORS = torch.tensor([[[1.0, 1.0]], [[2.0, 1.0]], [[1.0, 3.0]]])


def output_loss():
    loss = YOLOv5OutputDistillLoss(box_weight=0.05, obj_weight=1.0, cls_weight=0.5)
    loss.obj_level_weights = [4.0, 1.0, 0.4]
    loss.priors = PRIORS
    return loss


def mse_loss():
    return YOLOv5MSEOutputDistillLoss(loss_weight=1.0, box_weight=0.05, obj_weight=1.0,
                                      cls_weight=0.5)


def head_outputs(seed, n=4, nc=3, sizes=(8, 4, 2)):
    g = torch.Generator().manual_seed(seed)
    cls = [torch.randn(n, nc, s, s, generator=g) * 3 for s in sizes]
    box = [torch.randn(n, 4, s, s, generator=g) for s in sizes]
    # teacher objectness around +2: every image's weights sum above 1 (no clamp)
    obj = [torch.randn(n, 1, s, s, generator=g) + 2 for s in sizes]
    return cls, box, obj


def rows(preds, i):
    return tuple([level[i:i + 1] for level in part] for part in preds)


@pytest.mark.parametrize('make_loss', [output_loss, mse_loss])
def test_weights_of_one_change_nothing_to_the_bit(make_loss):
    loss = make_loss()
    s = tuple([t.requires_grad_() for t in part] for part in head_outputs(0))
    t = head_outputs(1)
    plain = loss(s, t)
    grads = torch.autograd.grad(sum(plain.values()), s[0] + s[1] + s[2])
    loss.image_weights = torch.ones(4)
    weighted = loss(s, t)
    assert weighted.keys() == plain.keys() == {'box', 'obj', 'cls'}
    for part in plain:
        assert plain[part].item() > 1e-3 and torch.equal(weighted[part], plain[part]), part
    for a, b in zip(torch.autograd.grad(sum(weighted.values()), s[0] + s[1] + s[2]), grads):
        assert torch.equal(a, b)


def test_output_loss_weighs_each_images_share_not_its_normaliser():
    """Expected from each image alone: its box / cls sum (the loss of the image alone
    times that image's own normaliser ``sum(sigmoid(t_obj))``, one level so one
    normaliser) over the batch's unweighted normaliser, its obj mean over the batch's
    cells, each times its weight; mmyolo's batch-size factor N on top."""
    loss = output_loss()
    n = 4
    s, t = head_outputs(0, sizes=(8, )), head_outputs(1, sizes=(8, ))
    weights = torch.tensor([1.0, 1.0, 2.0, 2.0])
    norm = lambda preds: preds[2][0].sigmoid().sum().item()  # noqa: E731
    expected = dict(box=0.0, obj=0.0, cls=0.0)
    for i in range(n):
        alone = loss(rows(s, i), rows(t, i))  # batch of 1: factor 1
        w = weights[i].item()
        for part in ('box', 'cls'):
            expected[part] += w * alone[part].item() * norm(rows(t, i)) / norm(t) * n
        expected['obj'] += w * alone['obj'].item()  # (mean over n x cells) x n
    unweighted = loss(s, t)
    loss.image_weights = weights
    got = loss(s, t)
    for part, value in expected.items():
        assert got[part].item() == pytest.approx(value, rel=1e-5), part
        assert got[part].item() > 1.2 * unweighted[part].item()  # the weight shows


def test_mse_loss_weighs_each_images_share():
    loss = mse_loss()
    s, t = head_outputs(0), head_outputs(1)
    weights = torch.tensor([3.0, 1.0, 1.0, 0.5])
    expected = dict(box=0.0, obj=0.0, cls=0.0)
    for i in range(4):  # a mean over the batch's elements x n: each image's own mean
        for part, value in loss(rows(s, i), rows(t, i)).items():
            expected[part] += weights[i].item() * value.item()
    loss.image_weights = weights
    got = loss(s, t)
    for part, value in expected.items():
        assert got[part].item() > 1e-3
        assert got[part].item() == pytest.approx(value, rel=1e-5), part


def test_output_loss_reads_the_image_weights_once(monkeypatch):
    """Reading a GPU tensor's values waits for the device: once per loss, not once per
    level and part (was 6 times here: obj and cls, 3 levels)."""
    loss = output_loss()
    loss.image_weights = torch.tensor([1.0, 2.0, 1.0, 2.0])
    calls = []
    tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, 'tolist',
                        lambda self: calls.append(self.shape) or tolist(self))
    loss(head_outputs(0), head_outputs(1))
    assert calls == [(4, )]


def test_image_weights_of_another_batch_are_named():
    loss = output_loss()
    loss.image_weights = torch.ones(3)
    with pytest.raises(ValueError, match=r'image_weights has shape \(3,\), but the batch '
                       'has 4 images'):
        loss(head_outputs(0), head_outputs(1))


def test_distiller_hands_the_weights_for_the_call_only(model):
    """unlabeled_weight 2: the output loss gets (1, 1, 1, 1, 2, 2) while it computes, and
    nothing afterwards; weight 1 or a labeled batch: no weights."""
    inputs, samples, _ = mixed_batch()
    loss = model.distiller.distill_losses['loss_out']
    seen = []
    hook = loss.register_forward_pre_hook(lambda module, args: seen.append(
        None if module.image_weights is None else module.image_weights.tolist()))
    try:
        model.unlabeled_weight = 2.0
        weighted = model.loss(inputs, samples)
        labeled = {k: v for k, v in samples.items() if k != 'unlabeled'}
        # a copy: mmyolo's loss normalises the targets in place
        model.loss(inputs[:4], dict(labeled, bboxes_labels=samples['bboxes_labels'].clone(),
                                    img_metas=samples['img_metas'][:4]))
        model.unlabeled_weight = 1.0
        plain = model.loss(inputs, samples)
    finally:
        model.unlabeled_weight = 1.0
        hook.remove()
    assert seen == [[1.0] * 4 + [2.0] * 2, None, None]
    assert loss.image_weights is None
    assert weighted['distill.loss_out_box'].item() > 1.1 * plain['distill.loss_out_box'].item()


def test_weights_are_cleared_when_a_loss_fails():
    loss = output_loss()
    with pytest.raises(RuntimeError, match='boom'):
        with image_weights_set([loss, torch.nn.Identity()], torch.ones(2)):
            assert loss.image_weights is not None
            raise RuntimeError('boom')
    assert loss.image_weights is None


@pytest.mark.parametrize('weight', [0, -1.0, float('inf'), float('nan')])
def test_unlabeled_weight_must_be_finite_and_positive(weight, tmp_path):
    """One check, one message, for the model and for --unlabeled-weight."""
    from mmkd_yolo.apis import prepare_train_cfg

    from ..test_apis.test_unlabeled import black_images
    message = rf'unlabeled_weight {weight} \(--unlabeled-weight\) is not in \(0, inf\)'
    with pytest.raises(ConfigError, match=message):
        YOLOv5Distill(architecture={}, teacher={}, distiller={}, unlabeled_weight=weight)
    with pytest.raises(ConfigError, match=message):
        prepare_train_cfg(KD_OUT_N2N, unlabeled=[black_images(tmp_path / 'u', 1)],
                          unlabeled_weight=weight)


def test_an_unlabeled_weight_no_loss_takes_is_refused():
    """A distiller whose losses do not weigh images (feature losses only) would ignore
    unlabeled_weight unsaid."""
    cfg = Config.fromfile(KD_OUT_N2N.replace('kd-out_', 'kd-out-cwd_'))
    distiller = cfg.model.distiller
    del distiller.distill_losses['loss_out'], distiller.loss_forward_mappings['loss_out']
    with pytest.raises(ConfigError, match=r"unlabeled_weight 2 \(--unlabeled-weight\) .* "
                       r"none of this distiller's losses \{'loss_cwd0': "
                       r"'ChannelWiseDivergence'.* add dict\(type='mmkd_yolo"
                       r".YOLOv5OutputDistillLoss'\)"):
        MODELS.build(dict(copy.deepcopy(cfg.model), teacher_precision='fp32',
                          unlabeled_weight=2.0))
