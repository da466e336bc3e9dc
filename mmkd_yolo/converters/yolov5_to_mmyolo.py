"""Ultralytics YOLOv5 (v6.0 - v7.0, P5) checkpoint -> mmyolo YOLOv5 state dict."""
from __future__ import annotations

import importlib.util
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..errors import CheckpointError
from ..fileio import (PickledModule, cache_dir, file_sha256, load_checkpoint_file,
                      restricted_load, save_atomic)
from ..fileio.safe_load import check_archive

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


#: A YOLOv5x has about 500 modules, 7 levels deep (Model.model.N.m.K.cv1.conv). A pickle
#: can name one module object from many places (a cycle, or 2^n paths through a chain of
#: n shared ones), so the walk of its tree is bounded rather than trusted to end.
_MAX_MODULES = 10_000
_MAX_DEPTH = 32
#: As many classes as a data.yaml may declare (``mmkd_yolo.datasets.yolo_data``).
_MAX_CLASSES = 100_000


def _module_state(module: PickledModule, prefix: str = '',
                  _walk: Optional[List[int]] = None) -> 'OrderedDict[str, torch.Tensor]':
    """The state dict of a pickled module tree, as ``nn.Module.state_dict`` names it.

    Raises:
        ValueError: The tree is not one of modules holding tensors (a cycle, too many
            modules, an entry of another type, a tensor declaring more elements than its
            data holds).
    """
    walk = [0] if _walk is None else _walk
    walk[0] += 1
    if walk[0] > _MAX_MODULES or prefix.count('.') > _MAX_DEPTH:
        raise ValueError(f'its model tree has more than {_MAX_MODULES} modules or is nested '
                         f'deeper than {_MAX_DEPTH} (at {prefix[:80]!r}): a cycle, or '
                         'modules shared many times')
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    non_persistent = getattr(module, '_non_persistent_buffers_set', set())
    for table in ('_parameters', '_buffers'):
        for name, tensor in _entries(module, table, prefix):
            if tensor is None or (table == '_buffers' and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(f'{prefix}{name} is a {type(tensor).__name__}, not a tensor')
            # a view may declare any shape over a one-element storage (stride 0); the
            # conversion copies every tensor, so such a declaration would be allocated
            if tensor.numel() * tensor.element_size() > tensor.untyped_storage().nbytes():
                raise ValueError(f'{prefix}{name} declares {tensor.numel()} elements over '
                                 f'{tensor.untyped_storage().nbytes()} bytes of data')
            out[prefix + name] = tensor.detach()
    for name, child in _entries(module, '_modules', prefix):
        if child is not None:
            out.update(_module_state(child, f'{prefix}{name}.', walk))
    return out


def _entries(module: Any, table: str, prefix: str) -> List[Tuple[str, Any]]:
    """``module.<table>`` (``_parameters``, ``_buffers``, ``_modules``) as (name, value)."""
    entries = getattr(module, table, {})
    if not isinstance(entries, dict) or not all(isinstance(k, str) for k in entries):
        raise ValueError(f'{prefix or "the model"} has a {table} of type '
                         f'{type(entries).__name__}, not a mapping of names')
    return list(entries.items())


def _map_key(key: str, key_map: Dict[str, str]) -> Optional[str]:
    """One Ultralytics key -> mmyolo key (mmyolo's rules), None for anchors.

    Raises:
        ValueError: A tensor with no place in mmyolo's YOLOv5 (a modified architecture).
    """
    parts = key.split('.')
    if len(parts) < 3 or parts[0] != 'model':
        raise ValueError(f'tensor {key[:120]!r} is not under model.<layer>.')
    num, module = parts[1:3]
    if num in ('9', '24'):
        if module == 'anchors':
            return None
        prefix = f'model.{num}.{module}'
    else:
        prefix = f'model.{num}'
    if prefix not in key_map:
        raise ValueError(f'tensor {key[:120]!r} has no place in mmyolo\'s YOLOv5 (a '
                         'modified architecture?)')
    new_key = key.replace(prefix, key_map[prefix])
    if '.m.' in new_key:
        new_key = new_key.replace('.m.', '.blocks.').replace('.cv', '.conv')
    else:
        new_key = new_key.replace('.cv1', '.main_conv').replace('.cv2', '.short_conv')
        new_key = new_key.replace('.cv3', '.final_conv')
    return new_key


def _class_names(names: Any, nc: int) -> List[str]:
    if isinstance(names, dict):
        names = [names[i] for i in sorted(names)]
    if isinstance(names, (list, tuple)):
        # one scalar each: str() of nested (shared) lists can be exponential in the file
        if not all(isinstance(n, (str, int, float)) for n in names):
            raise ValueError('its class names are not a list of names')
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
        CheckpointError: Not a YOLOv5 checkpoint, a P6 model, an unsupported version, or
            a model tree without YOLOv5's layout.
    """
    if not osp.isfile(path):
        raise CheckpointError(f'YOLOv5 checkpoint {path!r} does not exist.')
    ckpt = restricted_load(path)
    if not isinstance(ckpt, dict) or not any(
            isinstance(ckpt.get(k), PickledModule) for k in ('ema', 'model')):
        raise CheckpointError(
            f'{path!r} is not an Ultralytics YOLOv5 checkpoint (no pickled model under '
            "'model' or 'ema').")
    try:
        return _convert(path, ckpt, sha256)
    except CheckpointError:
        raise
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        # The model tree is data from the file: any module, attribute or tensor in it may
        # be missing or of another type. What the checks in _convert do not name is still
        # a file without YOLOv5's layout, not a bug to show as a traceback.
        # (RuntimeError: torch's, on tensors of unexpected shapes; RecursionError too.)
        reason = str(e) if isinstance(e, ValueError) else f'{type(e).__name__}: {e}'
        raise CheckpointError(
            f'{path!r} is not a YOLOv5 v6.0 - v7.0 P5 checkpoint that can be converted: '
            f'{reason[:300]}. Give an Ultralytics yolov5{{n,s,m,l,x}}.pt, or one trained '
            'from them without changing the architecture.') from None


def _convert(path: str, ckpt: Dict[str, Any], sha256: Optional[str]) -> Dict[str, Any]:
    use_ema = isinstance(ckpt.get('ema'), PickledModule)
    model = ckpt['ema'] if use_ema else ckpt['model']
    yaml = getattr(model, 'yaml', None)
    yaml = yaml if isinstance(yaml, dict) else {}  # metadata only: its defaults serve
    seq = dict(_entries(model, '_modules', '')).get('model')
    layers = dict(_entries(seq, '_modules', 'model.')) if seq is not None else {}
    detect = layers.get(str(len(layers) - 1)) if layers else None
    if not isinstance(detect, PickledModule) or not detect.pickled_class.endswith('.Detect'):
        kind = (detect.pickled_class if isinstance(detect, PickledModule) else
                type(detect).__name__ if detect is not None else 'nothing')
        raise CheckpointError(f'{path!r}: the last layer is {kind}, not a YOLOv5 Detect head '
                              '(segmentation and classification models are not supported).')
    num_levels = len(detect._modules['m']._modules)
    if num_levels != 3:
        raise CheckpointError(
            f'{path!r} is a P6 model ({num_levels} detection levels, strides up to 64); '
            'the teacher/student configs are P5 (3 levels). Use a P5 checkpoint '
            '(yolov5n/s/m/l/x.pt, not yolov5*6.pt).')
    if len(layers) != 25:  # mmyolo's key map is that of model.0 .. model.24
        raise CheckpointError(
            f'{path!r} has {len(layers)} layers; a YOLOv5 v6.0 - v7.0 P5 model has 25 '
            '(model.24 the Detect head). A modified architecture cannot be mapped onto '
            "mmyolo's YOLOv5.")
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
    if not 0 < nc <= _MAX_CLASSES:
        raise ValueError(f'its Detect head declares nc={nc}')
    stem = state.get('backbone.stem.conv.weight')
    if stem is None or stem.dim() != 4:
        raise ValueError('it has no stem convolution (model.0.conv.weight)')
    widen = float(yaml.get('width_multiple', stem.shape[0] / 64))
    deepen = float(yaml.get('depth_multiple', 0.33))
    stride = getattr(detect, 'stride', None)
    if stride is None:
        stride = getattr(model, 'stride', torch.tensor([8., 16., 32.]))
    if not isinstance(stride, torch.Tensor) or stride.numel() != 3:
        raise ValueError(f'its strides are {type(stride).__name__}, not 3 numbers')
    if 'model.24.anchors' not in raw:
        raise ValueError('its Detect head has no anchors')
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
    save_atomic(ckpt, cached)
    return ckpt, cached


def is_ultralytics_checkpoint(path: str) -> bool:
    """Whether ``path`` is a pickled Ultralytics model, judged without unpickling it."""
    try:
        check_archive(path)  # torch would first allocate whatever its directory declares
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        return False
    return any(n.startswith('models.yolo.') for n in names)
