"""The one reader of checkpoints and its three fitting policies."""
import pytest
import torch

from mmkd_yolo.converters import (detector_checkpoint_file, fit_detector_weights,
                                  read_detector_weights)
from mmkd_yolo.errors import CheckpointError
from mmkd_yolo.fileio import load_checkpoint_file


def model_state():
    return {'backbone.w': torch.zeros(2, 3), 'bbox_head.head_module.convs_pred.0.weight':
            torch.zeros(3 * (5 + 2), 4), 'neck.b': torch.zeros(4)}


def distill_ckpt(path):
    """StudentEMAHook's layout: EMA student under state_dict, raw under ema_state_dict."""
    ema = {f'architecture.{k}': v + 1 for k, v in model_state().items()}
    raw = {f'module.architecture.{k}': v + 2 for k, v in model_state().items()}
    teacher = {'teacher.backbone.w': torch.ones(5), 'distiller.connectors.c.w': torch.ones(1)}
    torch.save({'state_dict': {**ema, **teacher}, 'ema_state_dict': {**raw, 'steps': 3},
                'meta': {'epoch': 1}}, path)


def test_kinds_and_ema_first(tmp_path):
    path = tmp_path / 'kd.pth'
    distill_ckpt(path)
    weights = read_detector_weights(str(path))
    assert weights.kind == 'distillation' and weights.ema and weights.loadable is None
    assert set(weights.state_dict) == set(model_state())
    assert all(torch.equal(v, model_state()[k] + 1) for k, v in weights.state_dict.items())
    raw = read_detector_weights(str(path), use_ema=False)
    assert all(torch.equal(v, model_state()[k] + 2) for k, v in raw.state_dict.items())
    assert 'the student (EMA weights) of distillation checkpoint' in weights.describe()

    plain = tmp_path / 'plain.pth'
    torch.save({'state_dict': {f'module.{k}': v for k, v in model_state().items()}}, plain)
    weights = read_detector_weights(str(plain))
    assert weights.kind == 'detector' and weights.loadable == str(plain)
    assert set(weights.state_dict) == set(model_state())  # DDP's module. prefix stripped

    bare = tmp_path / 'bare.pth'
    torch.save(model_state(), bare)  # a bare state dict
    assert read_detector_weights(str(bare)).kind == 'detector'


def test_not_a_state_dict_is_named(tmp_path):
    for obj in ([1, 2], {'state_dict': {}}, {'a': 1}):
        torch.save(obj, tmp_path / 'x.pth')
        with pytest.raises(CheckpointError, match='holds no state dict'):
            read_detector_weights(str(tmp_path / 'x.pth'))
    with pytest.raises(CheckpointError, match='does not exist'):
        read_detector_weights(str(tmp_path / 'nope.pth'))


def test_policies(tmp_path):
    own = model_state()
    other_head = dict(own, **{'bbox_head.head_module.convs_pred.0.weight':
                              torch.zeros(3 * (5 + 80), 4), 'extra.t': torch.zeros(1)})
    path = tmp_path / 'other.pth'
    torch.save({'state_dict': other_head}, path)
    weights = read_detector_weights(str(path))
    # evaluate: exact or an error that names each kind of misfit
    with pytest.raises(CheckpointError) as info:
        fit_detector_weights(own, weights, 'evaluate', 'the detector of c.py')
    msg = str(info.value)
    assert 'does not fit the detector of c.py' in msg and '1 of other shape' in msg
    assert '1 unexpected (extra.t)' in msg and 'partly random weights' in msg
    # init: what fits by name and shape, the head left to train
    report = fit_detector_weights(own, weights, 'init')
    assert sorted(report.fit) == ['backbone.w', 'neck.b']
    assert report.mismatched == ['bbox_head.head_module.convs_pred.0.weight']
    # teacher: a head for other classes is an error with both class counts
    with pytest.raises(CheckpointError, match='are for 80 classes.*num_classes=2'):
        fit_detector_weights(own, weights, 'teacher', num_priors=3)
    # nothing fitting: an error for every policy
    torch.save({'state_dict': {'x.y': torch.zeros(1)}}, path)
    for policy in ('evaluate', 'init', 'teacher'):
        with pytest.raises(CheckpointError, match='another architecture|does not fit'):
            fit_detector_weights(own, read_detector_weights(str(path)), policy)
    torch.save({'state_dict': own}, path)
    assert len(fit_detector_weights(own, read_detector_weights(str(path)), 'evaluate').fit) == 3


def test_checkpoint_file_for_mmengine(tmp_path, monkeypatch):
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    path = tmp_path / 'kd.pth'
    distill_ckpt(path)
    weights = read_detector_weights(str(path))
    student = detector_checkpoint_file(weights)
    assert student.startswith(str(tmp_path / 'cache'))
    saved = load_checkpoint_file(student)['state_dict']
    assert all(torch.equal(saved[k], v) for k, v in weights.state_dict.items())
    assert detector_checkpoint_file(weights) == student  # cached by content
    plain = tmp_path / 'plain.pth'
    torch.save({'state_dict': model_state()}, plain)
    assert detector_checkpoint_file(read_detector_weights(str(plain))) == str(plain)


def test_model_key_checkpoint_is_converted_for_mmengine(tmp_path, monkeypatch):
    """``{'model': state_dict}``: mmengine's loading would take the whole dict as the state
    dict and load nothing (a warning); the reader hands mmengine a conversion instead."""
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    path = tmp_path / 'm.pth'
    torch.save({'model': model_state(), 'epoch': 3}, path)
    weights = read_detector_weights(str(path))
    assert weights.kind == 'detector' and weights.loadable is None
    loaded = load_checkpoint_file(detector_checkpoint_file(weights))['state_dict']
    assert set(loaded) == set(model_state())


def test_teacher_of_another_width_is_named_by_width(tmp_path):
    """A YOLOv5-n checkpoint for the -s teacher of a config: its head has the same outputs
    (same classes) and narrower inputs; the error names both widths, not the classes."""
    from mmkd_yolo.algorithms.teacher_loading import load_teacher_weights
    from mmkd_yolo.models.detector_cfg import load_detector_cfg
    from mmkd_yolo.registry import MODELS

    from ..conftest import STUDENT_N, TEACHER_S
    path = tmp_path / 'n.pth'
    torch.save({'state_dict': MODELS.build(load_detector_cfg(STUDENT_N)).state_dict()}, path)
    teacher = MODELS.build(load_detector_cfg(TEACHER_S))
    with pytest.raises(CheckpointError) as info:
        load_teacher_weights(teacher, str(path))
    assert str(info.value) == (
        f"teacher weights {str(path)!r} are a YOLOv5 of widen_factor 0.25 (n), the config's "
        "teacher is 0.5 (s): give the teacher's config with --t-cfg, e.g. --t-cfg "
        "'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'.")
    # other classes as well: both said, the width first
    other = load_detector_cfg(STUDENT_N)
    other.bbox_head.head_module.num_classes = 80
    torch.save({'state_dict': MODELS.build(other).state_dict()}, path)
    with pytest.raises(CheckpointError, match=r'widen_factor 0.25 \(n\).*\(Also, teacher '
                                              r'weights .* are for 80 classes, but the teacher '
                                              r'config has num_classes=8\.\)'):
        load_teacher_weights(teacher, str(path))
