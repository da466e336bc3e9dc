"""From ``export_onnx.py`` / ``onnx_test.py`` / ``infer.py`` options to models and configs.

A detector is given as a config and a checkpoint (a distillation run's: its student; an
mmyolo checkpoint; an Ultralytics YOLOv5 ``.pt``), or as an exported ``.onnx`` file,
which carries its class names and its test protocol (the exporting config's test
pipeline, evaluator and post-processing), so that ``onnx_test.py`` evaluates it exactly
as ``tools/test.py`` evaluates the PyTorch model.
"""
from __future__ import annotations

import os.path as osp
from typing import List, Optional, Tuple

import torch
from mmengine.config import Config

from ..errors import CheckpointError, ConfigError, DataError
from .config import detector_cfgs, inner_dataset, load_config, set_test_img_scale
from .data import apply_data_yaml

#: The config pieces an exported file keeps: what ``tools/test.py`` evaluates with.
TEST_KEYS = ('default_scope', 'test_dataloader', 'test_evaluator', 'test_cfg', 'env_cfg')


def _student_state(checkpoint: str) -> dict:
    """The detector weights of a checkpoint (a distillation checkpoint: its student)."""
    from ..converters import extract_student, is_ultralytics_checkpoint, load_or_convert
    from ..fileio import load_checkpoint_file
    if not osp.isfile(checkpoint):
        raise CheckpointError(f'checkpoint {checkpoint!r} does not exist.')
    if is_ultralytics_checkpoint(checkpoint):
        return load_or_convert(checkpoint)[0]['state_dict']
    ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f'{checkpoint!r} holds no state dict.')
    if any(str(k).startswith('architecture.') for k in state):
        return extract_student(checkpoint)['state_dict']
    return state


def class_names(cfg: Config) -> List[str]:
    """The class names the test set of ``cfg`` declares (its dataset's default if none)."""
    from mmengine.registry import DATASETS, init_default_scope
    dataset = inner_dataset(cfg.test_dataloader)
    names = (dataset.get('metainfo') or {}).get('classes')
    if names is None:
        init_default_scope(cfg.get('default_scope', 'mmyolo'))
        names = DATASETS.get(dataset['type']).METAINFO['classes']
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
    state = _student_state(checkpoint)
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    if missing or wrong:
        raise CheckpointError(
            f'{checkpoint!r} does not fit the detector of {config!r}: missing '
            f'{missing[:5]}{"..." if len(missing) > 5 else ""}, other shapes {wrong[:5]}. '
            'Give the config the checkpoint was trained with (and --data for its classes).')
    model.load_state_dict({k: v for k, v in state.items() if k in own})
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
    model = load_detector(config, checkpoint, data=data, img_size=img_size)
    meta = dict(classes=model.dataset_meta['classes'], img_size=img_size, batch=batch,
                dynamic=dynamic, nms=nms, checkpoint=osp.abspath(checkpoint),
                config=model.cfg.pretty_text)
    return export_onnx(model, out, img_size=img_size, batch=batch, dynamic=dynamic, nms=nms,
                       meta=meta)


def _onnx_meta(path: str) -> dict:
    from ..deploy import read_meta
    if not osp.isfile(path):
        raise CheckpointError(f'ONNX model {path!r} does not exist.')
    meta = read_meta(path)
    if 'config' not in meta:
        raise CheckpointError(
            f'{path!r} carries no test protocol: export it with '
            'tools/deployment/export_onnx.py (other exporters do not store one).')
    return meta


def onnx_test_cfg(path: str, data: Optional[str] = None,
                  img_size: Optional[int] = None) -> Tuple[Config, dict]:
    """The exported model's test config, with an ``ONNXRuntimeDetector`` as its model.

    The test pipeline, evaluator and post-processing are those of the exporting config.
    A static graph only takes its own size, so its test images are letterboxed to it
    (no per-batch rectangular shapes); a dynamic graph takes the config's protocol as
    it is, at ``img_size`` if given.

    Returns:
        tuple: (config, the file's metadata).
    """
    meta = _onnx_meta(path)
    cfg = Config.fromstring(meta['config'], '.py')
    if data:
        info = apply_data_yaml(cfg, data, splits=('val', ))
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
    return cfg, meta


def load_onnx_detector(path: str):
    """An exported file as a detector for mmdet's ``inference_detector``."""
    from mmengine.registry import init_default_scope

    from ..registry import MODELS
    cfg, meta = onnx_test_cfg(path)
    init_default_scope(cfg.get('default_scope', 'mmyolo'))
    model = MODELS.build(cfg.model)
    model.cfg = cfg
    model.dataset_meta = dict(classes=meta['classes'])
    return model


def onnx_test_runner(path: str, data: Optional[str] = None, img_size: Optional[int] = None,
                     work_dir: Optional[str] = None):
    """A Runner that evaluates an exported model as ``tools/test.py`` does a checkpoint."""
    from mmengine.runner import Runner
    cfg, _ = onnx_test_cfg(path, data, img_size)
    cfg.work_dir = work_dir or osp.join('work_dirs', 'onnx_test',
                                        osp.splitext(osp.basename(path))[0])
    return Runner(model=cfg.model, work_dir=cfg.work_dir,
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
    for path in images:
        yield path, inference_detector(model, path).pred_instances
