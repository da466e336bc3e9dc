"""Ultralytics checkpoint conversion, on a synthetic checkpoint pickled like the real ones."""
import os
import os.path as osp
import subprocess
import sys
import types

import pytest
import torch
from torch import nn

from mmkd_yolo.converters import convert_yolov5_checkpoint, is_ultralytics_checkpoint
from mmkd_yolo.converters.yolov5_to_mmyolo import _mmyolo_key_map
from mmkd_yolo.errors import CheckpointError, UnsafeCheckpointError
from mmkd_yolo.registry import MODELS
from mmkd_yolo.models.detector_cfg import load_detector_cfg

from ..conftest import REPO, STUDENT_N

LAYER_CLASSES = {  # Ultralytics YOLOv5 v6+ P5 layer types by index
    **{i: 'Conv' for i in (0, 1, 3, 5, 7, 10, 14, 18, 21)},
    **{i: 'C3' for i in (2, 4, 6, 8, 13, 17, 20, 23)},
    9: 'SPPF', 11: 'Upsample', 12: 'Concat', 15: 'Upsample', 16: 'Concat', 19: 'Concat',
    22: 'Concat', 24: 'Detect'}
STRIDES = torch.tensor([8., 16., 32.])
ANCHORS = torch.tensor([[(10, 13), (16, 30), (33, 23)], [(30, 61), (62, 45), (59, 119)],
                        [(116, 90), (156, 198), (373, 326)]], dtype=torch.float32)


def to_ultralytics(key, inverse):
    for mm_prefix in sorted(inverse, key=len, reverse=True):
        if key.startswith(mm_prefix + '.'):
            rest = key[len(mm_prefix):]
            if '.blocks.' in rest:
                rest = rest.replace('.blocks.', '.m.').replace('.conv1', '.cv1')
                rest = rest.replace('.conv2', '.cv2')
            else:
                rest = rest.replace('.main_conv', '.cv1').replace('.short_conv', '.cv2')
                rest = rest.replace('.final_conv', '.cv3')
            return inverse[mm_prefix] + rest
    raise KeyError(key)


@pytest.fixture
def fake_yolov5_tree(monkeypatch):
    """Importable stand-ins for the YOLOv5 repo's modules, only while saving."""
    classes = {}
    for mod_name, names in (('models.common', ('Conv', 'C3', 'Bottleneck', 'SPPF', 'Concat')),
                            ('models.yolo', ('Model', 'Detect'))):
        mod = types.ModuleType(mod_name)
        for name in names:
            cls = type(name, (nn.Module, ), {'__module__': mod_name})
            setattr(mod, name, cls)
            classes[name] = cls
        monkeypatch.setitem(sys.modules, mod_name, mod)
    monkeypatch.setitem(sys.modules, 'models', types.ModuleType('models'))
    return classes


def build_ultralytics_model(classes, mm_state, nc):
    inverse = {v: k for k, v in _mmyolo_key_map().items()}
    root = classes['Model']()
    root.model = nn.Sequential(*[
        classes[LAYER_CLASSES[i]]() if LAYER_CLASSES[i] in classes else nn.Upsample()
        for i in range(25)])
    for key, value in mm_state.items():
        path = to_ultralytics(key, inverse).split('.')
        module = root
        for i, part in enumerate(path[:-1]):
            if not hasattr(module, part):
                inner = {'conv': nn.Conv2d(1, 1, 1, bias=False), 'bn': nn.BatchNorm2d(1)}.get(part)
                if path[i - 1] == 'm' and path[i - 2] != '24':
                    inner = classes['Bottleneck']()
                module.add_module(part, inner if inner is not None else nn.Sequential())
            module = getattr(module, part)
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            module._parameters.pop(path[-1], None)
            if 'running' in path[-1]:
                module.register_buffer(path[-1], value.clone().half())
            else:
                module.register_parameter(path[-1], nn.Parameter(value.clone().half()))
        else:
            module.register_buffer(path[-1], value.clone())
    detect = root.model[24]
    detect.register_buffer('anchors', (ANCHORS / STRIDES.view(-1, 1, 1)).half())
    detect.nc, detect.stride = nc, STRIDES
    root.yaml = dict(nc=nc, depth_multiple=0.33, width_multiple=0.25)
    root.names = [f'thing{i}' for i in range(nc)]
    return root


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
    with pytest.raises(CheckpointError, match='depth/width 0.33/0.25'):
        MODELS.build(cfg.model)
    # data with another class count than the checkpoint's (as --data sets both to 2)
    cfg.model.teacher = load_detector_cfg(STUDENT_N)
    for model_cfg in (cfg.model.architecture, cfg.model.teacher):
        model_cfg.bbox_head.head_module.num_classes = 2
    with pytest.raises(CheckpointError, match='are for 3 classes.*num_classes=2'):
        MODELS.build(cfg.model)


def test_test_cfg_takes_ultralytics_pt(synthetic_pt, monkeypatch, tmp_path):
    """tools/test.py and export_onnx.py take an Ultralytics .pt as they take a converted one."""
    from mmkd_yolo.apis import prepare_test_cfg
    from mmkd_yolo.apis.deploy import _student_state
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    path, mm_model = synthetic_pt
    cfg = prepare_test_cfg(STUDENT_N, path, work_dir=str(tmp_path / 'w'))
    assert cfg.load_from != path and osp.isfile(cfg.load_from)
    state = torch.load(cfg.load_from, weights_only=True)['state_dict']
    assert set(state) == set(mm_model.state_dict())
    assert set(_student_state(path)) == set(state)
