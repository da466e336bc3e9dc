"""``--data data.yaml``: point a config at an Ultralytics dataset."""
from __future__ import annotations

from typing import Dict, Sequence

from mmengine.config import Config

from ..datasets import coco_json_for, load_data_yaml
from .config import inner_dataset, detector_cfgs


def _set_num_classes(model_cfg: dict, nc: int) -> None:
    head = model_cfg['bbox_head']
    old = head['head_module']['num_classes']
    head['head_module']['num_classes'] = nc
    # mmyolo scales the class loss weight by num_classes / 80
    if 'loss_cls' in head and 'loss_weight' in head['loss_cls']:
        head['loss_cls']['loss_weight'] = head['loss_cls']['loss_weight'] * nc / old


def apply_data_yaml(cfg: Config, data_path: str,
                    splits: Sequence[str] = ('train', 'val')) -> Dict:
    """Point a (distillation or mmyolo) config at a ``data.yaml`` dataset, in place.

    Sets the train / val / test datasets (COCO json made from the YOLO labels), the
    evaluators' annotation files, the class names and the class count of the student and
    the teacher (with mmyolo's class-loss weight rescaled accordingly).

    Args:
        cfg (Config): The config to change, loaded by :func:`load_config`.
        data_path (str): The ``data.yaml``.
        splits (Sequence[str]): Which splits to set up (``('val',)`` for testing).

    Returns:
        dict: What :func:`~mmkd_yolo.datasets.load_data_yaml` read.
    """
    data = load_data_yaml(data_path)
    set_datasets(cfg, data, splits)
    for model in detector_cfgs(cfg):
        _set_num_classes(model, data['nc'])
    return data


def set_datasets(cfg: Config, data: Dict, splits: Sequence[str] = ('train', 'val')) -> None:
    """The datasets and evaluators of ``cfg`` (those it has) on a read ``data.yaml``.

    Args:
        cfg (Config): A training / test config, or an exported model's test protocol.
        data (dict): What :func:`~mmkd_yolo.datasets.load_data_yaml` read.
        splits (Sequence[str]): Which splits to set up (``('val',)`` for testing).
    """
    names = data['names']
    jsons = {split: coco_json_for(data[split], names) for split in splits}
    metainfo = dict(classes=tuple(names))
    for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                          ('test_dataloader', 'val')):
        if not cfg.get(loader) or split not in jsons:
            continue
        inner_dataset(cfg[loader]).update(data_root='', ann_file=jsons[split],
                                           data_prefix=dict(img=''), metainfo=metainfo)
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key)
        if evaluators is None or 'val' not in jsons:
            continue
        for evaluator in (evaluators if isinstance(evaluators, list) else [evaluators]):
            evaluator['ann_file'] = jsons['val']
