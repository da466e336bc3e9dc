"""``--data data.yaml``: point a config at an Ultralytics dataset."""
from __future__ import annotations

import logging
import os
import os.path as osp
from typing import Dict, Sequence

from mmengine.config import Config
from mmengine.logging import print_log

from ..datasets import coco_json_for, load_data_yaml
from ..datasets.dataset_cfg import leaf_datasets
from ..errors import DataError
from .config import detector_cfgs


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
        leaves = leaf_datasets(cfg[loader]['dataset'])
        if len(leaves) > 1:
            # pointing each at the split would repeat it; one dataset is the split
            print_log(f'--data: {loader} held {len(leaves)} datasets (a concatenation); it '
                      f"is now the data file's {split} split alone, with the first one's "
                      'pipeline and settings.', 'current', logging.WARNING)
            cfg[loader]['dataset'] = leaves[0]
        leaves[0].update(data_root='', ann_file=jsons[split], data_prefix=dict(img=''),
                         metainfo=metainfo)
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key)
        if evaluators is None or 'val' not in jsons:
            continue
        for evaluator in (evaluators if isinstance(evaluators, list) else [evaluators]):
            evaluator['ann_file'] = jsons['val']


def check_data_files(cfg: Config, loaders: Sequence[str]) -> None:
    """Stop before the run starts when an annotation file the run reads does not exist.

    (mmengine would build the dataset first and fail deep inside pycocotools with a bare
    ``FileNotFoundError``, after the models are built.)

    Args:
        cfg (Config): A training or test config.
        loaders (Sequence[str]): The dataloaders the run uses (``train_dataloader``,
            ``val_dataloader``, ``test_dataloader``); their evaluators are checked too.

    Raises:
        DataError: Naming the dataloader, the file, and how to give the data.
    """
    evaluators = {'val_dataloader': 'val_evaluator', 'test_dataloader': 'test_evaluator'}
    for loader in loaders:
        if not cfg.get(loader):
            continue
        files = []
        for dataset in leaf_datasets(cfg[loader]['dataset']):
            ann_file, root = dataset.get('ann_file') or '', dataset.get('data_root') or ''
            files.append((f'{loader}.dataset', osp.join(root, ann_file) if ann_file else ''))
        evaluator = cfg.get(evaluators.get(loader, ''))
        for ev in (evaluator if isinstance(evaluator, list) else [evaluator] if evaluator
                   else []):
            files.append((evaluators[loader], ev.get('ann_file') or ''))
        for where, path in files:
            if path and '://' not in path and not osp.exists(path):
                raise DataError(
                    f'{where}: annotation file {path!r} does not exist (looked for from '
                    f'{os.getcwd()}). Give your data with --data data.yaml (Ultralytics '
                    f'layout), or point the config at a COCO-format set with --cfg-options '
                    f'{loader}.dataset.data_root=DIR/ ({where}.ann_file=... for the file).')

