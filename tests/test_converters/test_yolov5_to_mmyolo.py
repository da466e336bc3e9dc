"""Ultralytics checkpoint conversion, on a synthetic checkpoint pickled like the real ones."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from torch import nn

from mmkd_yolo.converters import convert_yolov5_checkpoint, is_ultralytics_checkpoint
from mmkd_yolo.errors import CheckpointError, UnsafeCheckpointError
from mmkd_yolo.registry import MODELS
from mmkd_yolo.models.detector_cfg import load_detector_cfg

from ..conftest import REPO, STUDENT_N
from ..helpers.ultralytics_pt import build_ultralytics_model, fake_yolov5_modules


@pytest.fixture
def fake_yolov5_tree():
    with fake_yolov5_modules() as classes:
        yield classes


@pytest.fixture
def synthetic_pt(tmp_path, fake_yolov5_tree):
    cfg = load_detector_cfg(STUDENT_N)  # YOLOv5-n
    cfg.bbox_head.head_module.num_classes = 3
    mm_model = MODELS.build(cfg).eval()
    for m in mm_model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    root = build_ultralytics_model(fake_yolov5_tree, mm_model.state_dict(), nc=3)
    path = tmp_path / 'yolov5n_custom.pt'
    torch.save(dict(epoch=-1, model=root, ema=None, optimizer=None, date='2026'), path)
    for name in ('models', 'models.common', 'models.yolo'):
        sys.modules.pop(name)  # the converter must not need the YOLOv5 tree
    return str(path), mm_model


def test_converts_and_loads_into_mmyolo(synthetic_pt):
    path, mm_model = synthetic_pt
    assert is_ultralytics_checkpoint(path)
    ckpt = convert_yolov5_checkpoint(path)
    meta = ckpt['meta']
    assert (meta['deepen_factor'], meta['widen_factor'], meta['num_classes']) == (0.33, 0.25, 3)
    assert meta['class_names'] == ['thing0', 'thing1', 'thing2']
    assert meta['anchors'][2][2] == (373.0, 326.0)
    cfg = load_detector_cfg(STUDENT_N)
    cfg.bbox_head.head_module.num_classes = 3
    model = MODELS.build(cfg).eval()
    model.load_state_dict(ckpt['state_dict'], strict=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref, out = mm_model._forward(x), model._forward(x)
    for ref_part, out_part in zip(ref, out):  # fp16 storage, as in released checkpoints
        for r, o in zip(ref_part, out_part):
            torch.testing.assert_close(o, r, rtol=2e-2, atol=2e-2)


@pytest.mark.slow
def test_cli_converts(synthetic_pt, tmp_path):
    path, _ = synthetic_pt
    out = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'model_converters',
                                                   'yolov5_to_mmyolo.py'), path,
                          str(tmp_path / 'out.pth')], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'num_classes=3' in out.stdout and 'YOLOv5-n' in out.stdout
    from mmkd_yolo.fileio import load_checkpoint_file
    assert 'state_dict' in load_checkpoint_file(str(tmp_path / 'out.pth'))


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg, ))


@pytest.mark.parametrize('func', ['os.system', 'builtins.eval'])
def test_malicious_pickle_refused_and_not_run(tmp_path, func):
    import builtins
    marker = tmp_path / 'pwned'
    payload = (_Evil(os.system, f'touch {marker}') if func == 'os.system' else
               _Evil(builtins.eval, f"open({str(marker)!r}, 'w').write('x')"))
    path = tmp_path / 'evil.pt'
    torch.save(dict(model=payload), path)
    with pytest.raises(UnsafeCheckpointError, match='refused, nothing was run') as info:
        convert_yolov5_checkpoint(str(path))
    assert func.split('.')[-1] in str(info.value)
    assert not marker.exists()


def test_p6_checkpoint_is_named(tmp_path, fake_yolov5_tree):
    root = fake_yolov5_tree['Model']()
    detect = fake_yolov5_tree['Detect']()
    detect.m = nn.ModuleList([nn.Conv2d(1, 1, 1) for _ in range(4)])
    root.model = nn.Sequential(fake_yolov5_tree['Conv'](), detect)
    path = tmp_path / 'yolov5n6.pt'
    torch.save(dict(model=root), path)
    for name in ('models', 'models.common', 'models.yolo'):
        sys.modules.pop(name)
    with pytest.raises(CheckpointError, match='P6 model'):
        convert_yolov5_checkpoint(str(path))


def test_not_a_yolov5_checkpoint(tmp_path):
    path = tmp_path / 'plain.pt'
    torch.save({'state_dict': {'w': torch.zeros(1)}}, path)
    assert not is_ultralytics_checkpoint(str(path))
    with pytest.raises(CheckpointError, match='not an Ultralytics YOLOv5 checkpoint'):
        convert_yolov5_checkpoint(str(path))
    with pytest.raises(CheckpointError, match='does not exist'):
        convert_yolov5_checkpoint(str(tmp_path / 'missing.pt'))


def test_teacher_from_ultralytics_pt(synthetic_pt, tmp_path, monkeypatch):
    """--t-weights x.pt: converted once (cached), checked against the teacher config."""
    from mmengine.config import Config

    from ..conftest import KD_OUT_S2N
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    path, mm_model = synthetic_pt
    cfg = Config.fromfile(KD_OUT_S2N)
    cfg.model.teacher = load_detector_cfg(STUDENT_N)  # the checkpoint is a YOLOv5-n
    for model_cfg in (cfg.model.architecture, cfg.model.teacher):
        model_cfg.bbox_head.head_module.num_classes = 3  # as the checkpoint's
    cfg.model.teacher_ckpt = path
    model = MODELS.build(cfg.model)
    assert len(list((tmp_path / 'cache' / 'converted').iterdir())) == 1
    w = model.teacher.bbox_head.head_module.convs_pred[1].weight
    torch.testing.assert_close(w, mm_model.bbox_head.head_module.convs_pred[1].weight,
                               rtol=1e-3, atol=1e-3)
    # the shipped s teacher config does not fit an n checkpoint: named, with the fix
    cfg.model.teacher = load_detector_cfg(STUDENT_N.replace('yolov5_n', 'yolov5_s'))
    cfg.model.teacher.bbox_head.head_module.num_classes = 3
    with pytest.raises(CheckpointError, match=r"of widen_factor 0.25 \(n\), the config's "
                       r"teacher is 0.5 \(s\): give the teacher's config with --t-cfg, e.g. "
                       r"--t-cfg 'mmyolo::yolov5/yolov5_n-v61"):
        MODELS.build(cfg.model)
    # data with another class count than the checkpoint's (as --data sets both to 2)
    cfg.model.teacher = load_detector_cfg(STUDENT_N)
    for model_cfg in (cfg.model.architecture, cfg.model.teacher):
        model_cfg.bbox_head.head_module.num_classes = 2
    with pytest.raises(CheckpointError, match='are for 3 classes.*num_classes=2'):
        MODELS.build(cfg.model)


def test_test_cfg_takes_ultralytics_pt(synthetic_pt, monkeypatch, tmp_path):
    """tools/test.py and export_onnx.py take an Ultralytics .pt as they take a converted
    one, through the one reader; a config for other classes is refused, not half-loaded."""
    from mmkd_yolo.apis import prepare_test_cfg
    from mmkd_yolo.converters import read_detector_weights
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    path, mm_model = synthetic_pt
    three = {'model.bbox_head.head_module.num_classes': 3}  # the checkpoint's
    cfg = prepare_test_cfg(STUDENT_N, path, work_dir=str(tmp_path / 'w'), cfg_options=three)
    assert cfg.load_from != path and osp.isfile(cfg.load_from)
    state = torch.load(cfg.load_from, weights_only=True)['state_dict']
    assert set(state) == set(mm_model.state_dict())
    weights = read_detector_weights(path)
    assert weights.kind == 'ultralytics' and set(weights.state_dict) == set(state)
    with pytest.raises(CheckpointError, match='does not fit the detector of.*of other shape'):
        prepare_test_cfg(STUDENT_N, path, work_dir=str(tmp_path / 'w'))  # 8 classes

# --- malformed model trees found by tests/test_fuzz_inputs.py: CheckpointError, quickly ----


def _broken_tree(edit):
    from ..helpers.fuzz_inputs import module_node, ultralytics_skeleton
    model = ultralytics_skeleton()
    edit(model, model._modules['model']._modules, module_node)
    return model


def _shared_chain(model, layers, node):  # 2^60 paths through 60 modules
    chain = node('Conv', params={'w': torch.zeros(1)})
    for _ in range(60):
        chain = node('Conv', modules={'a': chain, 'b': chain})
    layers['11'] = chain


@pytest.mark.parametrize('edit,match', [
    (lambda model, layers, node: layers['3']._modules.update(loop=model),
     'more than 10000 modules or is nested deeper'),  # was a RecursionError
    (_shared_chain, 'more than 10000 modules'),  # was a hang
    (lambda model, layers, node: layers.update({'25': layers.pop('24'), '24': node('Conv')}),
     r'26 layers'),  # the head at model.25: was KeyError: 'model.24.anchors'
    (lambda model, layers, node: layers.update({'24x': layers.pop('24'), '24': layers['23']}),
     'not a YOLOv5 Detect head'),
    (lambda model, layers, node: layers['1']._modules.update(extra=node('Conv', params={
        'weight': torch.zeros(1)})) or layers.update({'0': node('Conv')}),
     'no stem convolution'),  # was KeyError: 'backbone.stem.conv.weight'
    (lambda model, layers, node: layers['0']._modules['conv']._parameters.update(
        weight=torch.zeros(1).expand(2**40)), 'declares 1099511627776 elements'),
    (lambda model, layers, node: setattr(layers['24'], 'nc', 10**20), 'nc=10'),
    (lambda model, layers, node: setattr(model, 'names', [['cat'] * 3] * 3),
     'class names are not a list of names'),
    (lambda model, layers, node: setattr(layers['5'], '_parameters', [1, 2]),
     'not a mapping of names'),  # was AttributeError: 'list' object has no attribute 'items'
    (lambda model, layers, node: setattr(layers['5'], '_buffers', {'b': 'text'}),
     'is a str, not a tensor'),
    (lambda model, layers, node: setattr(layers['24'], 'stride', 'abc'),
     'strides are str'),
])


def test_malformed_ultralytics_tree_is_a_checkpoint_error(tmp_path, edit, match):
    import time

    from ..helpers.fuzz_inputs import fake_yolov5_modules
    with fake_yolov5_modules():
        path = tmp_path / 'broken.pt'
        torch.save(dict(model=_broken_tree(edit), ema=None), path)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=match):
        convert_yolov5_checkpoint(str(path))
    assert time.perf_counter() - start < 10


def test_intact_skeleton_converts(tmp_path):
    # the tree the cases above break: converted as it is
    from ..helpers.fuzz_inputs import fake_yolov5_modules
    with fake_yolov5_modules():
        path = tmp_path / 'ok.pt'
        torch.save(dict(model=_broken_tree(lambda *a: None), ema=None), path)
    meta = convert_yolov5_checkpoint(str(path))['meta']
    assert meta['num_classes'] == 2 and meta['class_names'] == ['cat', 'dog']


def test_autoanchored_checkpoint_is_refused_where_boxes_are_decoded(tmp_path, monkeypatch):
    """AutoAnchor changes anchors, not tensor shapes: tools/test.py, export and infer
    (and the teacher) refuse such a .pt for a config with other anchors; --weights warns."""
    from mmkd_yolo.apis import prepare_test_cfg
    from mmkd_yolo.apis.detector import load_detector
    from ..helpers.ultralytics_pt import ANCHORS, write_ultralytics_pt
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    cfg = load_detector_cfg(STUDENT_N)
    model = MODELS.build(cfg)  # 8 classes, as the config
    path = write_ultralytics_pt(tmp_path / 'auto.pt', model, 8, anchors=ANCHORS * 1.5)
    with pytest.raises(CheckpointError, match='trained with anchors.*autoanchor'):
        prepare_test_cfg(STUDENT_N, path, work_dir=str(tmp_path / 'w'))
    with pytest.raises(CheckpointError, match='trained with anchors'):
        load_detector(STUDENT_N, path)
    same = write_ultralytics_pt(tmp_path / 'same.pt', model, 8)
    assert osp.isfile(prepare_test_cfg(STUDENT_N, same, work_dir=str(tmp_path / 'w')).load_from)
