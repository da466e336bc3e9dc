"""Synthetic Ultralytics YOLOv5 checkpoints, pickled like the real ones (``models.yolo.Model``
objects), for the converter's tests and the README-commands test. No YOLOv5 source tree
is needed: stand-in classes are put in ``sys.modules`` only while saving."""
import sys
import types
from contextlib import contextmanager
from typing import Dict

import torch
from torch import nn

from mmkd_yolo.converters.yolov5_to_mmyolo import _mmyolo_key_map

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


@contextmanager
def installed_modules(modules: Dict[str, types.ModuleType]):
    """``modules`` importable by name inside the block; ``sys.modules`` restored after."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


@contextmanager
def fake_yolov5_modules():
    """Importable stand-ins for the YOLOv5 repo's modules, only inside the block."""
    classes, added = {}, {'models': types.ModuleType('models')}
    for mod_name, names in (('models.common', ('Conv', 'C3', 'Bottleneck', 'SPPF', 'Concat')),
                            ('models.yolo', ('Model', 'Detect'))):
        mod = types.ModuleType(mod_name)
        for name in names:
            cls = type(name, (nn.Module, ), {'__module__': mod_name})
            setattr(mod, name, cls)
            classes[name] = cls
        added[mod_name] = mod
    with installed_modules(added):
        yield classes


def build_ultralytics_model(classes, mm_state, nc, deepen=0.33, widen=0.25, anchors=ANCHORS):
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
    detect.register_buffer('anchors', (anchors / STRIDES.view(-1, 1, 1)).half())
    detect.nc, detect.stride = nc, STRIDES
    root.yaml = dict(nc=nc, depth_multiple=deepen, width_multiple=widen)
    root.names = [f'thing{i}' for i in range(nc)]
    return root




def write_ultralytics_pt(path, mm_model, nc, deepen=0.33, widen=0.25, anchors=ANCHORS):
    """Save ``mm_model`` (an mmyolo YOLOv5) as an Ultralytics ``.pt`` of that size."""
    with fake_yolov5_modules() as classes:
        root = build_ultralytics_model(classes, mm_model.state_dict(), nc, deepen, widen,
                                       anchors)
        torch.save(dict(epoch=-1, model=root, ema=None, optimizer=None, date='2026'), path)
    return str(path)
