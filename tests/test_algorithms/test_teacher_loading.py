"""A checkpoint of a run whose teacher ran in bfloat16 (held in it) loaded into a new model:
the teacher keeps the float32 weights of its teacher_ckpt, or the log says it does not."""
import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from ..conftest import KD_OUT_S2N, TEACHER_S
from ..helpers.logs import logged
from .test_yolov5_distill import build, random_teacher_ckpt

PRED = 'bbox_head.head_module.convs_pred.0.weight'


def bf16_run_checkpoint(ckpt):
    """The model's state after its bf16 teacher ran (as a checkpoint saves it), and the
    teacher's float32 weights before."""
    model, _ = build(KD_OUT_S2N, teacher_ckpt=ckpt, teacher_precision='bf16')
    exact = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    model.teacher_runtime.forward(torch.rand(2, 3, 64, 64))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert state[f'teacher.{PRED}'].dtype == torch.bfloat16
    return state, exact


def beyond_bf16(tensors) -> int:
    """How many values bfloat16 cannot hold (0: bf16-rounded weights)."""
    return sum(int((t != t.bfloat16().float()).sum()) for t in tensors if t.is_floating_point())


@pytest.mark.slow  # a distiller built, saved and resumed
def test_resume_keeps_the_float32_teacher(tmp_path):
    """As the Runner resumes (mmengine's loader): the teacher is teacher_ckpt's float32,
    the student the checkpoint's; the log says what was kept."""
    ckpt = random_teacher_ckpt(tmp_path)
    state, exact = bf16_run_checkpoint(ckpt)
    state['architecture.bbox_head.head_module.convs_pred.0.bias'] += 1.5  # a trained student
    model, _ = build(KD_OUT_S2N, teacher_ckpt=ckpt, teacher_precision='fp32')
    with logged('resume-bf16-teacher') as lines:
        _load_checkpoint_to_model(model, {'state_dict': state})
    loaded = model.teacher.state_dict()
    assert {v.dtype for v in loaded.values() if v.is_floating_point()} == {torch.float32}
    assert all(torch.equal(loaded[k], v) for k, v in exact.items())
    assert beyond_bf16(loaded.values()) > 1000  # not the rounded weights
    student_bias = model.student.bbox_head.head_module.convs_pred[0].bias
    torch.testing.assert_close(student_bias,
                               state['architecture.bbox_head.head_module.convs_pred.0.bias'])
    rounded = sum(1 for k, v in state.items() if k.startswith('teacher.') and
                  v.dtype == torch.bfloat16)
    message = ' '.join(r.getMessage() for r in lines)
    assert (f'the checkpoint holds the teacher in torch.bfloat16, as it ran: kept the float32 '
            f'values of its {rounded} tensors from {ckpt}') in message, message
    # torch's own loader takes the same path
    model, _ = build(KD_OUT_S2N, teacher_ckpt=ckpt, teacher_precision='fp32')
    model.load_state_dict(state)
    assert torch.equal(model.teacher.state_dict()[PRED], exact[PRED])


@pytest.mark.slow  # several distillers built from checkpoints
def test_another_teacher_or_none_loads_rounded_with_a_warning(tmp_path):
    """A checkpoint whose teacher is not teacher_ckpt's (or a model without one) has no
    float32 weights to keep: the teacher loads rounded, and the log warns."""
    (tmp_path / 'a').mkdir()
    state, _ = bf16_run_checkpoint(random_teacher_ckpt(tmp_path / 'a'))
    other = tmp_path / 'other.pth'
    torch.manual_seed(5)
    from mmkd_yolo.models.detector_cfg import load_detector_cfg
    from mmkd_yolo.registry import MODELS
    torch.save({'state_dict': MODELS.build(load_detector_cfg(TEACHER_S)).state_dict()}, other)
    for teacher_ckpt, why in ((str(other), f'its teacher is not that of {other}'),
                              (None, 'the model has no teacher_ckpt to take float32 weights')):
        model, _ = build(KD_OUT_S2N, teacher_ckpt=teacher_ckpt, teacher_precision='fp32')
        with logged(f'resume-other-{teacher_ckpt}', 'WARNING') as lines:
            _load_checkpoint_to_model(model, {'state_dict': state})
        loaded = model.teacher.state_dict()
        assert torch.equal(loaded[PRED], state[f'teacher.{PRED}'].float())
        assert beyond_bf16(loaded.values()) == 0
        message = ' '.join(r.getMessage() for r in lines)
        assert (f'the checkpoint holds the teacher in torch.bfloat16 and {why}' in message
                and 'weights rounded to torch.bfloat16' in message), message
