"""The test protocol an exported ONNX file carries: data, never code.

``tools/deployment/export_onnx.py`` stores what ``tools/test.py`` evaluates with -- the
test pipeline, the test dataloader's batching (batch size, rectangular batch shapes),
the detector's post-processing (``test_cfg``) and data preprocessor, the evaluator -- as
plain JSON. It is read back with ``json.loads`` only and checked against allow-lists of
the transform, dataset, metric and preprocessor types that mmyolo's and mmdet's test
protocols use, of the arguments each may carry and of the range of every number, before
anything is built from it: nothing in a model file runs (no config text, no
``custom_imports``, no unknown type), writes (no output prefix, no ``format_only``) or
asks for what no test needs (64 loader processes, a 100000 px image). No paths are stored
either (annotation files, data roots, checkpoints): the test set is given when testing
(``--data``).
"""
from __future__ import annotations

import math
import os.path as osp
import re
from typing import Any, Dict, Optional, Tuple

from mmengine.config import Config

from ..datasets.dataset_cfg import leaf_datasets
from ..errors import CheckpointError, ConfigError

#: Version of the stored protocol's layout; other versions are refused (re-export).
PROTOCOL_VERSION = 1
#: Scopes a type may be prefixed with (``mmdet.PackDetInputs``) or a dict tagged with
#: (``_scope_``).
SCOPES = ('mmyolo', 'mmdet', 'mmengine', 'mmcv')
#: The types a stored protocol may name, by where they stand. Anything else is refused.
ALLOWED_TYPES: Dict[str, tuple] = {
    # the transforms of mmyolo's and mmdet's detection test pipelines
    'transform': ('LoadImageFromFile', 'LoadImageFromNDArray', 'LoadAnnotations',
                  'YOLOv5KeepRatioResize', 'LetterResize', 'Resize', 'FixShapeResize',
                  'Pad', 'PackDetInputs'),
    'dataset': ('YOLOv5CocoDataset', 'CocoDataset'),
    'batch shapes': ('BatchShapePolicy', ),
    'sampler': ('DefaultSampler', ),
    'collate function': ('yolov5_collate', 'pseudo_collate', 'default_collate'),
    'metric': ('CocoMetric', ),
    'data preprocessor': ('YOLOv5DetDataPreprocessor', 'DetDataPreprocessor'),
    # mmcv's batched_nms eval()s this name: exact names only, no scope prefix
    'NMS': ('nms', 'soft_nms'),
    'test loop': ('TestLoop', ),
}
_UNSCOPED = ('NMS', )
#: What each part of the protocol may hold, and the kind of the typed dicts in it.
_DATASET_KEYS = ('type', '_scope_', 'pipeline', 'test_mode', 'filter_cfg', 'batch_shapes_cfg')
_LOADER_KEYS = ('batch_size', 'num_workers', 'persistent_workers', 'pin_memory', 'drop_last',
                'sampler', 'collate_fn')
_PARTS = ('version', 'default_scope', 'dataset', 'dataloader', 'evaluator', 'test_cfg',
          'data_preprocessor', 'test_loop', 'env_cfg')
#: Keys that hold paths or storage settings of the exporting machine: never stored.
_PATH_KEYS = ('ann_file', 'data_root', 'data_prefix', 'outfile_prefix', 'collect_dir',
              'backend_args', 'file_client_args', 'img_prefix')
#: The arguments each kind of typed dict may carry (besides ``type`` and ``_scope_``): the
#: test-time arguments of its allowed types, without those that name files, storage or
#: outputs (``outfile_prefix``, ``format_only``, ``backend_args``...). Anything else is
#: refused.
ALLOWED_KEYS: Dict[str, tuple] = {
    'transform': (
        'to_float32', 'color_type', 'imdecode_backend', 'ignore_empty',  # loading
        'with_bbox', 'with_label', 'with_mask', 'with_seg', 'with_keypoints', 'poly2mask',
        'box_type', 'reduce_zero_label', 'ignore_index', 'mask2bbox', 'merge_polygons',
        'scale', 'scale_factor', 'keep_ratio', 'clip_object_border', 'backend',  # resizing
        'interpolation', 'pad_val', 'use_mini_pad', 'stretch_only', 'allow_scale_up',
        'half_pad_param', 'width', 'height',
        'size', 'size_divisor', 'pad_to_square', 'padding_mode',  # padding
        'meta_keys'),  # packing
    'dataset': tuple(k for k in _DATASET_KEYS if k not in ('type', '_scope_')),
    'batch shapes': ('batch_size', 'img_size', 'size_divisor', 'extra_pad_ratio'),
    'sampler': ('shuffle', 'seed', 'round_up'),
    'collate function': (),
    'metric': ('metric', 'classwise', 'proposal_nums', 'iou_thrs', 'metric_items',
               'sort_categories'),
    'data preprocessor': ('mean', 'std', 'pad_size_divisor', 'pad_value', 'pad_mask',
                          'mask_pad_value', 'pad_seg', 'seg_pad_value', 'bgr_to_rgb',
                          'rgb_to_bgr', 'boxtype2tensor', 'non_blocking', 'batch_augments'),
    'NMS': ('iou_threshold', 'class_agnostic', 'split_thr', 'max_num', 'score_threshold',
            'sigma', 'min_score', 'method', 'offset'),
    'test loop': ('fp16', ),
}
#: The keys of the mappings without a type, by the key they stand under.
_UNTYPED_KEYS: Dict[str, tuple] = {
    'dataloader': _LOADER_KEYS,
    'test_cfg': ('multi_label', 'nms_pre', 'score_thr', 'nms', 'max_per_img', 'yolox_style',
                 'min_bbox_size'),
    'env_cfg': ('cudnn_benchmark', 'mp_cfg', 'dist_cfg'),
    'mp_cfg': ('mp_start_method', 'opencv_num_threads'),
    'dist_cfg': ('backend', ),
    'filter_cfg': ('filter_empty_gt', 'min_size'),
    'pad_val': ('img', 'seg', 'mask'),
}
#: Largest image side (px) and batch a protocol (or an exported graph) may ask for.
MAX_IMG_SIZE = 4096
MAX_BATCH = 256
#: More data loading processes than any test needs: a file does not get to start many.
MAX_WORKERS = 16
#: ``(low, high)`` of the numbers under each key, nested ones included (``pad_val.img``,
#: ``scale[0]``); those of :data:`_INTEGER_KEYS` must be whole. A number under any other
#: key is refused.
NUMBER_BOUNDS: Dict[str, Tuple[float, float]] = {
    'batch_size': (1, MAX_BATCH),
    'num_workers': (0, MAX_WORKERS),
    'opencv_num_threads': (0, MAX_WORKERS),
    'scale': (1, MAX_IMG_SIZE),
    'img_size': (1, MAX_IMG_SIZE),
    'size': (1, MAX_IMG_SIZE),
    'width': (1, MAX_IMG_SIZE),
    'height': (1, MAX_IMG_SIZE),
    'size_divisor': (1, MAX_IMG_SIZE),
    'pad_size_divisor': (1, MAX_IMG_SIZE),
    'min_size': (0, MAX_IMG_SIZE),
    'min_bbox_size': (0, MAX_IMG_SIZE),
    'scale_factor': (1 / MAX_IMG_SIZE, MAX_IMG_SIZE),
    'extra_pad_ratio': (0, 1),
    'pad_val': (0, 255),
    'pad_value': (0, 255),
    'mask_pad_value': (0, 255),
    'seg_pad_value': (0, 255),
    'ignore_index': (0, 255),
    'mean': (0, 255),
    'std': (1e-3, 255),
    'score_thr': (-1, 1),
    'iou_threshold': (0, 1),
    'score_threshold': (0, 1),
    'min_score': (0, 1),
    'sigma': (0, 1e3),
    'offset': (0, 1),
    'iou_thrs': (0, 1),
    'nms_pre': (1, 10**6),
    'split_thr': (1, 10**6),
    'max_num': (-1, 10**6),
    'max_per_img': (1, 10**4),
    'proposal_nums': (1, 10**4),
    'seed': (0, 2**32 - 1),
}
#: Counts, sizes and indices: a fraction there fails deep inside (a slice, a tensor shape).
_INTEGER_KEYS = ('batch_size', 'num_workers', 'opencv_num_threads', 'scale', 'img_size', 'size',
                 'width', 'height', 'size_divisor', 'pad_size_divisor', 'nms_pre', 'split_thr',
                 'max_num', 'max_per_img', 'proposal_nums', 'seed', 'ignore_index')


def _plain(obj: Any, where: str) -> Any:
    """``obj`` as JSON data (dicts, lists, str, numbers, bools, None) or a named error."""
    if isinstance(obj, dict):
        return {str(k): _plain(v, f'{where}.{k}') for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f'{where}[{i}]') for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise ConfigError(f'{where} = {obj!r} cannot be stored as data in the ONNX file (its '
                      'test protocol is kept as JSON): give it as a name or number.')


def _drop_paths(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_paths(v) for k, v in obj.items() if k not in _PATH_KEYS}
    if isinstance(obj, list):
        return [_drop_paths(v) for v in obj]
    return obj


def _looks_absolute(value: str) -> bool:
    return (osp.isabs(value) or value.startswith('~')
            or re.match(r'^[A-Za-z]:[\\/]', value) is not None)


def _check_no_paths(obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_no_paths(v, f'{where}.{k}')
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_no_paths(v, f'{where}[{i}]')
    elif isinstance(obj, str) and _looks_absolute(obj):
        raise ConfigError(f'{where} = {obj!r}: the ONNX file stores no paths of this '
                          'machine; remove it from the config\'s test protocol.')


def protocol_from_cfg(cfg: Config) -> dict:
    """The test protocol of a detector's test config, as JSON-able data without paths.

    Args:
        cfg (Config): What ``load_detector`` sets as ``model.cfg``: ``test_dataloader``,
            ``test_evaluator``, ``test_cfg`` (the loop), ``env_cfg``, ``default_scope``
            and ``model`` (the detector, for its ``test_cfg`` and data preprocessor).

    Returns:
        dict: ``version``, ``default_scope``, ``dataset`` (type, pipeline, batch shapes),
        ``dataloader`` (batching), ``evaluator``, ``test_cfg`` (post-processing),
        ``data_preprocessor``, ``test_loop``, ``env_cfg``.
    """
    loader = cfg.test_dataloader
    dataset = leaf_datasets(loader['dataset'])[0]  # the test set itself, not its wrappers
    protocol = dict(
        version=PROTOCOL_VERSION,
        default_scope=cfg.get('default_scope', 'mmyolo'),
        dataset={k: dataset[k] for k in _DATASET_KEYS if k in dataset},
        dataloader={k: loader[k] for k in _LOADER_KEYS if k in loader},
        evaluator=cfg.test_evaluator,
        test_cfg=cfg.model['test_cfg'],
        data_preprocessor=cfg.model['data_preprocessor'],
        test_loop=cfg.get('test_cfg') or dict(type='TestLoop'),
        env_cfg=cfg.get('env_cfg') or {})
    protocol = _drop_paths(_plain(protocol, 'config'))
    _check_no_paths(protocol, 'config')
    check_protocol(protocol, "the config's test protocol", exporting=True)
    return protocol


class _Checker:
    """Walks a stored protocol; every ``type`` must be allowed where it stands."""

    def __init__(self, source: str, exporting: bool) -> None:
        self.source, self.exporting = source, exporting

    def fail(self, what: str) -> None:
        if self.exporting:  # a config whose protocol a model file cannot carry
            raise ConfigError(f'{self.source} {what}: an ONNX file carries its test '
                              'protocol as data and admits only the known types.')
        raise CheckpointError(f'{self.source} {what}: refused, nothing from the file was '
                              'run. Re-export the model with tools/deployment/export_onnx.py.')

    def type_name(self, name: Any, kind: Optional[str], where: str) -> None:
        if kind is None:
            self.fail(f'carries an unknown type {name!r} at {where} (no type belongs there)')
        allowed = ALLOWED_TYPES[kind]
        if not isinstance(name, str):
            self.fail(f'carries a {kind} type that is not a name ({name!r}) at {where}')
        scope, _, base = name.rpartition('.')
        if (scope and (kind in _UNSCOPED or scope not in SCOPES)) or base not in allowed:
            self.fail(f'carries an unknown {kind} type {name!r} at {where} (known: '
                      f'{", ".join(allowed)})')

    def walk(self, node: Any, kind: Optional[str], where: str,
             children: Optional[Dict[str, str]] = None, key: Optional[str] = None,
             bound: Optional[Tuple[str, Tuple[float, float]]] = None) -> None:
        """Check ``node``, which stands under ``key``: its own ``type`` is a ``kind`` and
        its keys are that kind's (a mapping without a type: those of its ``key``);
        ``children``: the kinds of the typed dicts under its keys (no typed dict is
        allowed anywhere else); ``bound``: the key of :data:`NUMBER_BOUNDS` its numbers
        stand under, and its range."""
        if isinstance(node, list):
            for i, item in enumerate(node):
                self.walk(item, kind, f'{where}[{i}]', children, key, bound)
        elif isinstance(node, dict):
            if 'type' in node:
                self.type_name(node['type'], kind, where)
                allowed = ALLOWED_KEYS[kind]
            elif key in _UNTYPED_KEYS:
                allowed = _UNTYPED_KEYS[key]
            else:
                self.fail(f'carries a mapping without a type at {where}')
            unknown = [k for k in node if k not in allowed + ('type', '_scope_')]
            if unknown:
                self.fail(f'carries unknown entries {unknown} at {where} (known: '
                          f'{", ".join(allowed) or "none"})')
            if '_scope_' in node and node['_scope_'] not in SCOPES:
                self.fail(f'carries an unknown scope {node["_scope_"]!r} at {where}')
            for k, value in node.items():
                if k not in ('type', '_scope_'):
                    self.walk(value, (children or {}).get(k), f'{where}.{k}', key=k,
                              bound=(k, NUMBER_BOUNDS[k]) if k in NUMBER_BOUNDS else bound)
        elif isinstance(node, str):
            if _looks_absolute(node):
                self.fail(f'carries a path ({node!r}) at {where}')
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            self.number(node, where, bound)
        elif node is not None and not isinstance(node, bool):
            self.fail(f'carries a malformed value at {where}')

    def number(self, value: float, where: str,
               bound: Optional[Tuple[str, Tuple[float, float]]]) -> None:
        if bound is None:
            self.fail(f'carries a number at {where}, where none belongs')
        key, (low, high) = bound
        whole = key not in _INTEGER_KEYS or isinstance(value, int)
        if not (math.isfinite(value) and low <= value <= high and whole):
            self.fail(f'carries {where} = {value!r}, outside [{low:g}, {high:g}]'
                      + ('' if whole else ' or not a whole number'))

    def mapping(self, node: Any, where: str) -> dict:
        if not isinstance(node, dict):
            self.fail(f'carries a malformed {where} (not a mapping)')
        return node

    def keys(self, node: Any, allowed: tuple, where: str) -> dict:
        self.mapping(node, where)
        unknown = [k for k in node if k not in allowed]
        if unknown:
            self.fail(f'carries unknown entries {unknown} in {where}')
        return node


def check_protocol(protocol: Any, source: str, exporting: bool = False) -> dict:
    """Check a stored protocol against the allow-lists (types, keys, number ranges, no
    paths); nothing is imported or built.

    Args:
        protocol: What was read (``json.loads``) from the file.
        source (str): The file, for the messages.
        exporting (bool): Checking a protocol about to be stored (a ``ConfigError``)
            rather than one read from a file (a ``CheckpointError``).

    Returns:
        dict: ``protocol``, checked.

    Raises:
        CheckpointError: The protocol names a type outside :data:`ALLOWED_TYPES`, a key
            outside :data:`ALLOWED_KEYS` (an output path, ``format_only``...), a number
            outside :data:`NUMBER_BOUNDS` (``num_workers: 64``), a path, or is malformed.
    """
    check = _Checker(source, exporting)
    check.keys(protocol, _PARTS, 'test protocol')
    if protocol.get('version') != PROTOCOL_VERSION:
        check.fail(f'carries a test protocol of version {protocol.get("version")!r} (this '
                   f'version reads {PROTOCOL_VERSION})')
    for part in ('dataset', 'evaluator', 'test_cfg', 'data_preprocessor'):
        if part not in protocol:
            check.fail(f'carries a test protocol without its {part}')
    if protocol.get('default_scope', 'mmyolo') not in SCOPES:
        check.fail(f'carries an unknown default scope {protocol["default_scope"]!r}')
    dataset = check.mapping(protocol['dataset'], 'dataset')
    if not isinstance(dataset.get('pipeline'), list):
        check.fail('carries a test protocol without a test pipeline')
    check.walk(dataset, 'dataset', 'dataset',
               dict(pipeline='transform', batch_shapes_cfg='batch shapes'), key='dataset')
    check.walk(check.mapping(protocol.get('dataloader', {}), 'dataloader'), None,
               'dataloader', dict(sampler='sampler', collate_fn='collate function'),
               key='dataloader')
    evaluators = protocol['evaluator']
    if not isinstance(evaluators, (dict, list)) or not evaluators:
        check.fail('carries a malformed evaluator')
    check.walk(evaluators, 'metric', 'evaluator', key='evaluator')
    check.walk(check.mapping(protocol['test_cfg'], 'test_cfg'), None, 'test_cfg',
               dict(nms='NMS'), key='test_cfg')
    check.walk(check.mapping(protocol['data_preprocessor'], 'data_preprocessor'),
               'data preprocessor', 'data_preprocessor', key='data_preprocessor')
    check.walk(check.mapping(protocol.get('test_loop', dict(type='TestLoop')), 'test_loop'),
               'test loop', 'test_loop', key='test_loop')
    check.walk(check.mapping(protocol.get('env_cfg', {}), 'env_cfg'), None, 'env_cfg',
               key='env_cfg')
    return protocol


def _tuples(obj: Any) -> Any:
    """JSON lists -> tuples inside transforms (sizes and ratios are tuples there)."""
    if isinstance(obj, dict):
        return {k: _tuples(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return tuple(_tuples(v) for v in obj)
    return obj


def protocol_to_cfg(protocol: dict) -> Config:
    """A test config from a checked protocol: no data set yet (``--data`` gives it).

    Returns:
        Config: ``default_scope``, ``test_dataloader`` (its dataset without annotation
        file or data root), ``test_evaluator``, ``test_cfg`` (the loop), ``env_cfg`` and
        ``model`` (``test_cfg`` and ``data_preprocessor`` of the exported detector).
    """
    dataset = dict(protocol['dataset'])
    dataset['pipeline'] = [_tuples(t) for t in dataset['pipeline']]
    loader = dict(sampler=dict(type='DefaultSampler', shuffle=False))
    loader.update(protocol.get('dataloader', {}), dataset=dataset)
    return Config(dict(
        default_scope=protocol.get('default_scope', 'mmyolo'),
        test_dataloader=loader,
        test_evaluator=protocol['evaluator'],
        test_cfg=protocol.get('test_loop', dict(type='TestLoop')),
        env_cfg=protocol.get('env_cfg', {}),
        model=dict(test_cfg=protocol['test_cfg'],
                   data_preprocessor=protocol['data_preprocessor'])))
