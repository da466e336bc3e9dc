"""A trained detector from a config and a checkpoint, as ``infer.py`` and the export take it.

The checkpoint is a distillation run's (its student is taken), an mmyolo checkpoint or an
Ultralytics YOLOv5 ``.pt``; the config is a distillation or plain mmyolo config. The
model gets the config's test pipeline and the class names of its test set.
"""
from __future__ import annotations

from typing import List, Optional

from mmengine.config import Config

from ..compat import init_detector_without_weights
from ..errors import ConfigError
from .config import detector_cfgs, inner_dataset, load_config, set_test_img_scale
from .data import apply_data_yaml

#: The config pieces a detector is tested with (what ``tools/test.py`` evaluates with,
#: and what an exported file keeps).
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
    cfg = load_config(config)
    if data:
        apply_data_yaml(cfg, data, splits=('val', ))
    if img_size:
        set_test_img_scale(cfg, img_size)
    test_cfg = Config({k: cfg[k] for k in TEST_KEYS if k in cfg})
    test_cfg.model = detector_cfgs(cfg)[0]
    test_cfg.model.pop('init_cfg', None)
    model = init_detector_without_weights(test_cfg, device=device)  # loaded below
    from ..converters import fit_detector, read_detector_weights
    report = fit_detector(model, read_detector_weights(checkpoint), 'evaluate',
                          f'the detector of {config!r}')
    model.load_state_dict(report.fit)
    model.dataset_meta = dict(classes=class_names(test_cfg))
    return model.eval()
