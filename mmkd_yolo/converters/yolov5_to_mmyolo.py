"""Ultralytics YOLOv5 (v6.0 - v7.0, P5) checkpoint -> mmyolo YOLOv5 state dict."""
from __future__ import annotations

import importlib.util
import io
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..errors import CheckpointError
from ..fileio import (AtomicLocalBackend, PickledModule, cache_dir, file_sha256,
                      load_checkpoint_file, restricted_load)

def _mmyolo_key_map() -> Dict[str, str]:
    """mmyolo's own P5 key mapping (``tools/model_converters/yolov5_to_mmyolo.py``).

    The mapping is reused; its ``convert()`` is not, since it unpickles the full
    checkpoint with the YOLOv5 source tree on ``sys.path``.
    """
    import mmyolo
    path = osp.join(osp.dirname(mmyolo.__file__), '.mim', 'tools', 'model_converters',
                    'yolov5_to_mmyolo.py')
    spec = importlib.util.spec_from_file_location('_mmyolo_yolov5_converter', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.convert_dict_p5


def _module_state(module: PickledModule, prefix: str = '') -> 'OrderedDict[str, torch.Tensor]':
    """The state dict of a pickled module tree, as ``nn.Module.state_dict`` names it."""
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    non_persistent = getattr(module, '_non_persistent_buffers_set', set())
    for name, param in getattr(module, '_parameters', {}).items():
        if param is not None:
            out[prefix + name] = param.detach()
    for name, buf in getattr(module, '_buffers', {}).items():
        if buf is not None and name not in non_persistent:
            out[prefix + name] = buf
    for name, child in getattr(module, '_modules', {}).items():
        if child is not None:
            out.update(_module_state(child, f'{prefix}{name}.'))
    return out


def _map_key(key: str, key_map: Dict[str, str]) -> Optional[str]:
    """One Ultralytics key -> mmyolo key (mmyolo's rules), None for anchors."""
    num, module = key.split('.')[1:3]
    if num in ('9', '24'):
        if module == 'anchors':
            return None
        prefix = f'model.{num}.{module}'
    else:
        prefix = f'model.{num}'
    new_key = key.replace(prefix, key_map[prefix])
    if '.m.' in new_key:
        new_key = new_key.replace('.m.', '.blocks.').replace('.cv', '.conv')
    else:
        new_key = new_key.replace('.cv1', '.main_conv').replace('.cv2', '.short_conv')
        new_key = new_key.replace('.cv3', '.final_conv')
    return new_key


def _class_names(names: Any, nc: int) -> List[str]:
    if isinstance(names, dict):
        return [str(names[i]) for i in sorted(names)]
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    return [f'class{i}' for i in range(nc)]


def convert_yolov5_checkpoint(path: str, sha256: Optional[str] = None) -> Dict[str, Any]:
    """Convert an Ultralytics YOLOv5 P5 checkpoint to an mmyolo checkpoint dict.

    Args:
        path (str): ``yolov5{n,s,m,l,x}.pt`` or a custom-trained one (v6.0 - v7.0).
        sha256 (str, optional): The file's SHA-256, when the caller has it already.

    Returns:
        dict: ``state_dict`` (float32, mmyolo names) and ``meta`` with
        ``deepen_factor``, ``widen_factor``, ``num_classes``, ``class_names``,
        ``anchors`` (pixels, per level), ``ema`` (whether the EMA weights were used),
        ``source`` and ``sha256``.

    Raises:
        UnsafeCheckpointError: The pickle names code outside the allow-list.
        CheckpointError: Not a YOLOv5 checkpoint, a P6 model, or an unsupported version.
    """
    if not osp.isfile(path):
        raise CheckpointError(f'YOLOv5 checkpoint {path!r} does not exist.')
    ckpt = restricted_load(path)
    if not isinstance(ckpt, dict) or not any(
            isinstance(ckpt.get(k), PickledModule) for k in ('ema', 'model')):
        raise CheckpointError(
            f'{path!r} is not an Ultralytics YOLOv5 checkpoint (no pickled model under '
            "'model' or 'ema').")
    use_ema = isinstance(ckpt.get('ema'), PickledModule)
    model = ckpt['ema'] if use_ema else ckpt['model']
    yaml = getattr(model, 'yaml', None) or {}
    seq = getattr(model, '_modules', {}).get('model')
    layers = getattr(seq, '_modules', {})
    detect = layers.get(str(len(layers) - 1)) if layers else None
    if detect is None or not detect.pickled_class.endswith('.Detect'):
        kind = detect.pickled_class if detect is not None else 'nothing'
        raise CheckpointError(f'{path!r}: the last layer is {kind}, not a YOLOv5 Detect head '
                              '(segmentation and classification models are not supported).')
    num_levels = len(detect._modules['m']._modules)
    if num_levels != 3:
        raise CheckpointError(
            f'{path!r} is a P6 model ({num_levels} detection levels, strides up to 64); '
            'the teacher/student configs are P5 (3 levels). Use a P5 checkpoint '
            '(yolov5n/s/m/l/x.pt, not yolov5*6.pt).')
    if layers['0'].pickled_class.endswith('.Focus'):
        raise CheckpointError(f'{path!r} is a YOLOv5 v5.0 (Focus stem) checkpoint; '
                              'mmyolo\'s v61 configs need v6.0 or later.')

    raw = _module_state(model)
    key_map = _mmyolo_key_map()
    state = OrderedDict()
    for key, value in raw.items():
        new_key = _map_key(key, key_map)
        if new_key is not None:
            state[new_key] = value.float()
    nc = int(getattr(detect, 'nc', yaml.get('nc', 0)))
    stem_out = state['backbone.stem.conv.weight'].shape[0]
    widen = float(yaml.get('width_multiple', stem_out / 64))
    deepen = float(yaml.get('depth_multiple', 0.33))
    stride = getattr(detect, 'stride', None)
    if stride is None:
        stride = getattr(model, 'stride', torch.tensor([8., 16., 32.]))
    anchors = (raw['model.24.anchors'].float() * stride.float().view(-1, 1, 1))
    anchors = [[tuple(round(v, 2) for v in a) for a in level] for level in anchors.tolist()]
    meta = dict(
        deepen_factor=deepen,
        widen_factor=widen,
        num_classes=nc,
        class_names=_class_names(getattr(model, 'names', None), nc),
        anchors=anchors,
        ema=use_ema,
        source=osp.abspath(path),
        sha256=sha256 or file_sha256(path),
        converted_by='mmkd_yolo.converters.yolov5_to_mmyolo')
    return dict(state_dict=state, meta=meta)


def load_or_convert(path: str) -> Tuple[Dict[str, Any], str]:
    """The mmyolo checkpoint for an Ultralytics ``.pt``: converted once, then cached
    under the cache folder, keyed by the file's content.

    Returns:
        tuple: (checkpoint dict, path of the cached conversion).
    """
    sha256 = file_sha256(path)
    name = osp.splitext(osp.basename(path))[0]
    cached = cache_dir('converted', f'{name}-{sha256[:16]}.pth')
    if osp.isfile(cached):
        return load_checkpoint_file(cached, map_location='cpu'), cached
    ckpt = convert_yolov5_checkpoint(path, sha256=sha256)
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    AtomicLocalBackend().put(buffer.getvalue(), cached)
    return ckpt, cached


def is_ultralytics_checkpoint(path: str) -> bool:
    """Whether ``path`` is a pickled Ultralytics model, judged without unpickling it."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        return False
    return any(n.startswith('models.yolo.') for n in names)
