"""From ``export_onnx.py`` / ``onnx_test.py`` / ``infer.py`` options to models and configs.

A detector is given as a config and a checkpoint (a distillation run's: its student; an
mmyolo checkpoint; an Ultralytics YOLOv5 ``.pt``), or as an exported ``.onnx`` file,
which carries its class names and its test protocol (the exporting config's test
pipeline, batching, evaluator, data preprocessor and post-processing) as JSON data, so
that ``onnx_test.py`` evaluates it exactly as ``tools/test.py`` evaluates the PyTorch
model on the same ``--data``. Opening a file runs nothing from it: its protocol is read
with ``json.loads`` and admits only allow-listed types (:mod:`mmkd_yolo.deploy.protocol`);
it stores no paths (the test set is given when testing).
"""
from __future__ import annotations

import os.path as osp
from typing import List, Optional, Tuple

import torch
from mmengine.config import Config

from ..datasets import load_data_yaml
from ..errors import CheckpointError, ConfigError, DataError
from .config import detector_cfgs, inner_dataset, load_config, set_test_img_scale
from .data import apply_data_yaml, set_datasets

#: The config pieces an exported file keeps: what ``tools/test.py`` evaluates with.
TEST_KEYS = ('default_scope', 'test_dataloader', 'test_evaluator', 'test_cfg', 'env_cfg')


def class_names(cfg: Config) -> List[str]:
    """The class names the test set of ``cfg`` declares (its dataset's default if none).

    The dataset type is looked up in the registry of its own scope (``_scope_``, else
    the config's ``default_scope``): mmyolo's ``YOLOv5CocoDataset`` is not in the root.
    """
    from mmengine.registry import DATASETS, DefaultScope
    dataset = inner_dataset(cfg.test_dataloader)
    names = (dataset.get('metainfo') or {}).get('classes')
    if names is None:
        scope = dataset.get('_scope_') or cfg.get('default_scope') or 'mmyolo'
        with DefaultScope.overwrite_default_scope(scope), \
                DATASETS.switch_scope_and_registry(scope) as registry:
            dataset_cls = registry.get(dataset['type'])
        names = (getattr(dataset_cls, 'METAINFO', None) or {}).get('classes')
        if names is None:
            raise ConfigError(
                f'the test dataset type {dataset["type"]!r} is not known in scope {scope!r} '
                'or declares no classes: give the class names with --data data.yaml (or '
                'metainfo=dict(classes=...) in the config).')
    return list(names)


def load_detector(config: str, checkpoint: str, data: Optional[str] = None,
                  img_size: Optional[int] = None, device: str = 'cpu'):
    """The student (or plain mmyolo detector) of ``config`` with ``checkpoint``'s weights.

    Args:
        config (str): A distillation or mmyolo config (``mmyolo::...`` too).
        checkpoint (str): Distillation, mmyolo or Ultralytics ``.pt`` weights.
        data (str, optional): A ``data.yaml``: its classes and val split.
        img_size (int, optional): Test size (px).
        device (str): Where the model runs.

    Returns:
        nn.Module: The detector in eval mode, with ``cfg`` (its test config, as mmdet's
        ``init_detector`` sets it) and ``dataset_meta``.
    """
    from mmdet.apis import init_detector
    cfg = load_config(config)
    if data:
        apply_data_yaml(cfg, data, splits=('val', ))
    if img_size:
        set_test_img_scale(cfg, img_size)
    test_cfg = Config({k: cfg[k] for k in TEST_KEYS if k in cfg})
    test_cfg.model = detector_cfgs(cfg)[0]
    test_cfg.model.pop('init_cfg', None)
    import warnings
    with warnings.catch_warnings():  # "checkpoint is None": the weights are loaded below
        warnings.filterwarnings('ignore', message='checkpoint is None')
        model = init_detector(test_cfg, None, device=device)
    from ..converters import fit_detector, read_detector_weights
    report = fit_detector(model, read_detector_weights(checkpoint), 'evaluate',
                          f'the detector of {config!r}')
    model.load_state_dict(report.fit)
    model.dataset_meta = dict(classes=class_names(test_cfg))
    return model.eval()


def export_detector_onnx(config: str, checkpoint: str, out: str, img_size: int = 640,
                         batch: int = 1, dynamic: bool = False, nms: Optional[dict] = None,
                         data: Optional[str] = None) -> dict:
    """``tools/deployment/export_onnx.py``: export a detector with its test protocol.

    Returns:
        dict: ``inputs`` / ``outputs`` (name, shape) of the written graph.
    """
    from ..deploy import export_onnx
    from ..deploy.protocol import protocol_from_cfg
    model = load_detector(config, checkpoint, data=data, img_size=img_size)
    # data only, no paths: the test set is given to onnx_test.py (--data)
    meta = dict(classes=[str(c) for c in model.dataset_meta['classes']], img_size=img_size,
                batch=batch, dynamic=dynamic, nms=nms, protocol=protocol_from_cfg(model.cfg))
    return export_onnx(model, out, img_size=img_size, batch=batch, dynamic=dynamic, nms=nms,
                       meta=meta)


def _onnx_meta(path: str) -> dict:
    """The file's metadata, checked: JSON data with allow-listed types only."""
    from ..deploy import read_meta
    from ..deploy.protocol import check_protocol
    if not osp.isfile(path):
        raise CheckpointError(f'ONNX model {path!r} does not exist.')
    meta = read_meta(path)
    if 'config' in meta:  # older exports: Python config text, which is never executed
        raise CheckpointError(
            f'{path!r} is an older export whose test protocol is Python config text; it '
            'is refused and nothing from it was run (a model file must not run code). '
            'Re-export the model with tools/deployment/export_onnx.py.')
    if 'protocol' not in meta:
        raise CheckpointError(
            f'{path!r} carries no test protocol: export it with '
            'tools/deployment/export_onnx.py (other exporters do not store one).')
    classes = meta.get('classes')
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, str) for c in classes)
            or not all(isinstance(meta.get(k), int) and not isinstance(meta.get(k), bool)
                       and meta[k] > 0 for k in ('img_size', 'batch'))
            or not isinstance(meta.get('dynamic'), bool)):
        raise CheckpointError(
            f'{path!r} carries malformed metadata (classes, img_size, batch, dynamic): '
            'refused, nothing from it was run. Re-export it with '
            'tools/deployment/export_onnx.py.')
    check_protocol(meta['protocol'], repr(path))
    return meta


def onnx_test_cfg(path: str, data: Optional[str] = None,
                  img_size: Optional[int] = None) -> Tuple[Config, dict]:
    """The exported model's test config, with an ``ONNXRuntimeDetector`` as its model.

    The test pipeline, batching, evaluator, data preprocessor and post-processing are
    those of the exporting config, read from the file as data (allow-listed types only;
    nothing in the file runs). The file names no data set: ``data`` (a ``data.yaml``)
    gives the test set, its val split; without it the config has no annotation file
    (enough for inference, not for evaluation). A static graph only takes its own size,
    so its test images are letterboxed to it (no per-batch rectangular shapes); a
    dynamic graph takes the config's protocol as it is, at ``img_size`` if given.

    Returns:
        tuple: (config, the file's metadata).

    Raises:
        CheckpointError: The file is missing, carries no protocol, an older (Python)
            one, or one with a type outside the allow-lists.
    """
    meta = _onnx_meta(path)
    try:
        cfg = _onnx_protocol_cfg(path, meta, data, img_size)
    except (CheckpointError, ConfigError, DataError):
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, AssertionError) as e:
        # the protocol passed the type allow-list, but its values do not fit where they
        # go (a pipeline entry that is not a mapping, a scale that is no size, ...)
        raise CheckpointError(
            f'{path!r} carries a malformed test protocol ({type(e).__name__}: '
            f'{str(e)[:200]}): refused, nothing from it was run. Re-export the model with '
            'tools/deployment/export_onnx.py.') from None
    return cfg, meta


def _onnx_protocol_cfg(path: str, meta: dict, data: Optional[str],
                       img_size: Optional[int]) -> Config:
    from ..deploy.protocol import protocol_to_cfg
    cfg = protocol_to_cfg(meta['protocol'])
    if data:
        info = load_data_yaml(data)
        set_datasets(cfg, info, splits=('val', ))  # the protocol has no model to resize
        if info['nc'] != len(meta['classes']):
            raise DataError(
                f'{data!r} has {info["nc"]} classes, the model {path!r} '
                f'{len(meta["classes"])} ({meta["classes"][:5]}...): evaluate it on data '
                'with its own classes.')
    if meta['dynamic']:
        if img_size:
            set_test_img_scale(cfg, img_size)
    else:
        if img_size and img_size != meta['img_size']:
            raise ConfigError(f'{path!r} is a static {meta["img_size"]} px graph; '
                              f'--img-size {img_size} needs an export with --dynamic.')
        set_test_img_scale(cfg, meta['img_size'])
        inner_dataset(cfg.test_dataloader)['batch_shapes_cfg'] = None
        cfg.test_dataloader.batch_size = meta['batch']
    det = cfg.model
    # the preprocessor is mmyolo's: built in its scope, not in the detector's
    preprocessor = dict(det['data_preprocessor'], _scope_=cfg.get('default_scope', 'mmyolo'))
    cfg.model = dict(type='ONNXRuntimeDetector', _scope_='mmkd_yolo', onnx_file=path,
                     test_cfg=det['test_cfg'], data_preprocessor=preprocessor)
    return cfg


def build_onnx_detector(cfg: Config, path: str):
    """The ``ONNXRuntimeDetector`` of :func:`onnx_test_cfg`'s config: onnxruntime session
    and data preprocessor, built from the file's checked data."""
    from mmengine.registry import DefaultScope

    from ..registry import MODELS
    try:
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmyolo')):
            return MODELS.build(cfg.model)
    except (CheckpointError, ConfigError, DataError):
        raise
    except Exception as e:  # noqa: BLE001  (onnxruntime's and mmdet's many error types)
        raise CheckpointError(
            f'{path!r} cannot be loaded as a detector ({type(e).__name__}: '
            f'{str(e)[:200]}): a damaged graph or a malformed data preprocessor. Re-export '
            'the model with tools/deployment/export_onnx.py.') from None


def load_onnx_detector(path: str):
    """An exported file as a detector for mmdet's ``inference_detector``."""
    cfg, meta = onnx_test_cfg(path)
    model = build_onnx_detector(cfg, path)
    model.cfg = cfg
    model.dataset_meta = dict(classes=meta['classes'])
    return model


def onnx_test_runner(path: str, data: Optional[str] = None, img_size: Optional[int] = None,
                     work_dir: Optional[str] = None):
    """A Runner that evaluates an exported model as ``tools/test.py`` does a checkpoint.

    ``data`` (a ``data.yaml``: its val split) is required: the file stores no data set.
    """
    from mmengine.runner import Runner
    cfg, _ = onnx_test_cfg(path, data, img_size)
    if not data:
        raise DataError(
            f'{path!r} names no test set (an exported file stores no data paths): pass '
            '--data DATA_YAML, an Ultralytics data.yaml whose val split is evaluated, e.g. '
            f'python tools/deployment/onnx_test.py {path} --data my_data/data.yaml')
    cfg.work_dir = work_dir or osp.join('work_dirs', 'onnx_test',
                                        osp.splitext(osp.basename(path))[0])
    return Runner(model=build_onnx_detector(cfg, path), work_dir=cfg.work_dir,
                  test_dataloader=cfg.test_dataloader, test_evaluator=cfg.test_evaluator,
                  test_cfg=cfg.get('test_cfg', dict(type='TestLoop')),
                  default_scope=cfg.get('default_scope', 'mmyolo'),
                  env_cfg=cfg.get('env_cfg', dict()), cfg=cfg)


@torch.no_grad()
def detect(model, images: List[str]):
    """mmdet's ``inference_detector`` for PyTorch and ONNX models alike.

    Yields:
        tuple: (image path, ``InstanceData`` with bboxes, scores, labels).
    """
    from mmdet.apis import inference_detector
    from mmengine.registry import DefaultScope
    for path in images:
        # the test pipeline's transforms are in the model config's scope (mmyolo's)
        with DefaultScope.overwrite_default_scope(model.cfg.get('default_scope', 'mmyolo')):
            result = inference_detector(model, path)
        yield path, result.pred_instances
