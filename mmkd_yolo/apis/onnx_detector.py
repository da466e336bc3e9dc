"""Exported ONNX detectors: export with the test protocol, read it back, run and evaluate.

An exported ``.onnx`` file carries its class names and its test protocol (the exporting
config's test pipeline, batching, evaluator, data preprocessor and post-processing) as
JSON data, so that ``onnx_test.py`` evaluates it exactly as ``tools/test.py`` evaluates the
PyTorch model on the same ``--data``. Opening a file runs nothing from it: its protocol is
read with ``json.loads`` and admits only allow-listed types
(:mod:`mmkd_yolo.deploy.protocol`); it stores no paths (the test set is given when
testing).
"""
from __future__ import annotations

import os.path as osp
from typing import Optional, Tuple

from mmengine.config import Config

from ..datasets import load_data_yaml
from ..errors import CheckpointError, ConfigError, DataError
from ..evaluation import use_empty_safe_coco_metric
from .config import inner_dataset, set_test_img_scale
from .data import set_datasets
from .detector import load_detector


def export_detector_onnx(config: str, checkpoint: str, out: str, img_size: int = 640,
                         batch: int = 1, dynamic: bool = False, nms: Optional[dict] = None,
                         data: Optional[str] = None) -> dict:
    """``tools/deployment/export_onnx.py``: export a detector with its test protocol.

    Args:
        config (str): A distillation or mmyolo config (``mmyolo::...`` too).
        checkpoint (str): Distillation, mmyolo or Ultralytics ``.pt`` weights.
        out (str): The ``.onnx`` file to write.
        img_size (int): Input height and width (px, a multiple of 32).
        batch (int): Input batch size.
        dynamic (bool): Batch, height and width dynamic.
        nms (dict, optional): End-to-end graph with ONNX NonMaxSuppression
            (:func:`mmkd_yolo.deploy.export_onnx`).
        data (str, optional): A ``data.yaml``: its classes and val split.

    Returns:
        dict: ``inputs`` / ``outputs`` (name, shape) of the written graph.
    """
    from ..deploy import export_onnx
    from ..deploy.protocol import MAX_BATCH, MAX_IMG_SIZE, protocol_from_cfg
    if not (0 < img_size <= MAX_IMG_SIZE and 0 < batch <= MAX_BATCH):
        # what a reader of the file accepts (onnx_test.py, infer.py)
        raise ConfigError(f'--img-size {img_size} --batch {batch}: an exported model takes '
                          f'images of up to {MAX_IMG_SIZE} px, batches of 1 to {MAX_BATCH}.')
    model = load_detector(config, checkpoint, data=data, img_size=img_size)
    # data only, no paths: the test set is given to onnx_test.py (--data)
    meta = dict(classes=[str(c) for c in model.dataset_meta['classes']], img_size=img_size,
                batch=batch, dynamic=dynamic, nms=nms, protocol=protocol_from_cfg(model.cfg))
    return export_onnx(model, out, img_size=img_size, batch=batch, dynamic=dynamic, nms=nms,
                       meta=meta)


def _onnx_meta(path: str) -> dict:
    """The file's metadata, checked: JSON data with allow-listed types only."""
    from ..deploy import read_meta
    from ..deploy.protocol import MAX_BATCH, MAX_IMG_SIZE, check_protocol
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
                       and 0 < meta[k] <= most
                       for k, most in (('img_size', MAX_IMG_SIZE), ('batch', MAX_BATCH)))
            or not isinstance(meta.get('dynamic'), bool)):
        raise CheckpointError(
            f'{path!r} carries malformed metadata (classes, img_size up to {MAX_IMG_SIZE}, '
            f'batch up to {MAX_BATCH}, dynamic): refused, nothing from it was run. '
            'Re-export it with tools/deployment/export_onnx.py.')
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
    use_empty_safe_coco_metric(cfg)  # a model that detects nothing scores 0.0, not nothing
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
