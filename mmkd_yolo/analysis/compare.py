"""Two or more checkpoints on the same val set: what distillation bought, and where.

Each checkpoint is evaluated exactly as ``tools/test.py`` evaluates it (the same config
preparation, weights check and Runner), so the numbers are the ones ``tools/test.py``
prints; the report adds per-class AP side by side, the classes gained and lost, the cost
of each model and a picture of the val images where they disagree most.
"""
from __future__ import annotations

import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from mmengine.config import Config

from ..apis.config import detector_cfgs, inner_dataset
from ..apis.test import evaluated_weights, load_test_cfg
from ..errors import CheckpointError, ConfigError, DataError
from .evaluate import run_test
from .grid import draw_comparison_grid
from .matching import ImageMatch, rank_disagreement
from .measure import measure_model
from .report import ModelResult, write_compare_md
from .val_set import ValSet, load_predictions, load_val_set, val_set_files

#: Head tensor whose rows are anchors x (5 + classes) (mmyolo's YOLOv5).
_HEAD = 'bbox_head.head_module.convs_pred.0.weight'


@dataclass
class Comparison:
    """What :func:`compare_checkpoints` wrote.

    Attributes:
        val_set (ValSet): The val set.
        models (list[ModelResult]): The models, as given.
        rows (list[tuple]): The pictured images: (image id, each model's match).
        markdown (str): ``compare.md``.
        picture (str): ``compare.png``.
    """
    val_set: ValSet
    models: List[ModelResult]
    rows: List[Tuple[int, List[ImageMatch]]]
    markdown: str
    picture: str


def default_names(checkpoints: Sequence[str]) -> List[str]:
    """Names for the models: the checkpoints' file names, with their folder where that
    alone would not tell them apart (``plain/epoch_30``, ``distilled/epoch_30``)."""
    stems = [osp.splitext(osp.basename(c))[0] for c in checkpoints]
    if len(set(stems)) == len(stems):
        return stems
    return [f'{osp.basename(osp.dirname(osp.abspath(c)))}/{s}' for c, s in zip(checkpoints,
                                                                           stems)]


def img_size_of(cfg: Config) -> int:
    """The size (px) the test pipeline resizes to (its first ``scale``)."""
    for transform in inner_dataset(cfg.test_dataloader)['pipeline']:
        if transform.get('scale'):
            return int(max(transform['scale']))
    raise ConfigError('the test pipeline has no resize with a `scale`: give --img-size.')


def trained_classes(weights, num_priors: int) -> Tuple[Optional[int], Optional[List[str]]]:
    """(class count of the head, class names the checkpoint records); None where unknown.

    Names come from an Ultralytics checkpoint's model or an mmengine checkpoint's
    ``meta.dataset_meta`` (what its training set declared).

    Args:
        weights (DetectorWeights): The checkpoint's.
        num_priors (int): Anchors per cell of the head.
    """
    head = weights.state_dict.get(_HEAD)
    count = head.shape[0] // num_priors - 5 if head is not None else None
    names = weights.meta.get('class_names') or \
        (weights.meta.get('dataset_meta') or {}).get('classes')
    return count, list(names) if names else None


def _check_classes(weights, cfg: Config, val_set: ValSet) -> None:
    from ..converters import short_list
    base_sizes = detector_cfgs(cfg)[0].get('bbox_head', {}).get('prior_generator', {}).get(
        'base_sizes')
    count, names = trained_classes(weights, len(base_sizes[0]) if base_sizes else 3)
    ours = val_set.classes
    if count is not None and count != len(ours):
        raise CheckpointError(
            f'{weights.describe()} predicts {count} classes, the val set '
            f'{val_set.ann_file} has {len(ours)} ({short_list(ours)}). Compare checkpoints '
            'trained on these classes; each with the config it was trained with, and '
            '--data data.yaml of the data set they were trained for.')
    if names and names != ours:
        raise CheckpointError(
            f'{weights.describe()} was trained on other classes '
            f'({short_list(names)}) than the val set {val_set.ann_file} has '
            f'({short_list(ours)}): it is for another data set. Compare checkpoints '
            'trained on the same data, with --data data.yaml of that data.')


def _safe(name: str) -> str:
    return re.sub(r'[^\w.-]+', '_', name).strip('_') or 'model'


def compare_checkpoints(models: Sequence[Tuple[str, str, str]],
                        out_dir: str,
                        data: Optional[str] = None,
                        img_size: Optional[int] = None,
                        cfg_options: Optional[dict] = None,
                        num_images: int = 4,
                        score_thr: float = 0.3) -> Comparison:
    """Evaluate checkpoints on one val set and write ``compare.md`` and ``compare.png``.

    Everything is checked before the first evaluation starts: configs and checkpoints
    exist, all configs test on the same val set, it has labels, and every checkpoint
    was trained for its classes.

    Args:
        models (list[tuple]): (name, config, checkpoint) per model; the first is the
            reference the others are compared with (e.g. the student trained alone).
        out_dir (str): Where the report goes; each model's test log and predictions
            (``<name>/predictions.bbox.json``) go in a folder of its name.
        data (str, optional): An Ultralytics ``data.yaml``: evaluate all on its val split.
        img_size (int, optional): Evaluate at this size (px); default the configs'.
        cfg_options (dict, optional): Overrides applied to every config.
        num_images (int): Images in the picture. Defaults to 4.
        score_thr (float): Least score of a box in the picture and its counts.
            Defaults to 0.3.

    Returns:
        Comparison: The results and the files written.

    Raises:
        ConfigError: A config is missing, or the configs test on different val sets.
        CheckpointError: A checkpoint is missing, does not fit its config, or was
            trained for other classes.
        DataError: The val set has no labels.
    """
    import torch
    names = [name for name, _, _ in models]
    if len(models) < 2:
        raise ConfigError('compare needs two or more checkpoints, each with its config.')
    if len({_safe(n) for n in names}) < len(names):
        raise ConfigError(f'the models\' names {names} are not distinct: give --names.')
    from ..converters import read_detector_weights
    prepared = []
    for name, config, checkpoint in models:
        work_dir = osp.join(out_dir, _safe(name))
        try:
            cfg = load_test_cfg(config, work_dir=work_dir, cfg_options=cfg_options,
                                data=data, img_size=img_size,
                                json_prefix=osp.join(work_dir, 'predictions'))
            weights = read_detector_weights(checkpoint)
        except (ConfigError, CheckpointError, DataError) as e:
            raise type(e)(f'{name}: {e}') from None
        prepared.append((cfg, weights))
    files = [val_set_files(cfg) for cfg, _ in prepared]
    if len(set(files)) > 1:
        listing = '; '.join(f'{n}: {ann}' for n, (ann, _) in zip(names, files))
        raise ConfigError(f'the configs test on different val sets ({listing}): give '
                          '--data data.yaml to evaluate them all on its val split.')
    val_set = load_val_set(*files[0])
    if not val_set.num_boxes:
        raise DataError(
            f'the val set {val_set.ann_file} has no labels ({len(val_set.images)} images, '
            '0 boxes): AP cannot be computed. Give --data a data.yaml whose val images have '
            'label files (images/ -> labels/*.txt), or a COCO json with annotations.')
    sizes = [img_size or img_size_of(cfg) for cfg, _ in prepared]
    if len(set(sizes)) > 1:
        raise ConfigError(f'the configs test at different sizes ({dict(zip(names, sizes))} '
                          'px): give --img-size N to evaluate all at one size.')
    for (name, config, _), (cfg, weights) in zip(models, prepared):
        try:
            _check_classes(weights, cfg, val_set)
            cfg.load_from = evaluated_weights(cfg, config, weights)
        except CheckpointError as e:
            raise type(e)(f'{name}: {e}') from None

    os.makedirs(out_dir, exist_ok=True)
    results = []
    for i, ((name, config, checkpoint), (cfg, weights)) in enumerate(zip(models, prepared)):
        print(f'[compare] {i + 1}/{len(models)} {name}: {weights.describe()}', flush=True)
        bbox_json = osp.join(cfg.work_dir, 'predictions.bbox.json')
        if osp.isfile(bbox_json):  # an earlier comparison's
            os.remove(bbox_json)
        metrics, model = run_test(cfg, _safe(name))
        results.append(ModelResult(name, config, checkpoint, weights.describe(), metrics,
                                   bbox_json, **measure_model(model, sizes[0])))
    predictions = [load_predictions(m.predictions, val_set) for m in results]
    rows = rank_disagreement(val_set, predictions, score_thr)[:num_images]
    picture = osp.join(out_dir, 'compare.png')
    draw_comparison_grid(val_set, names, predictions, rows, picture, score_thr)
    markdown = osp.join(out_dir, 'compare.md')
    write_compare_md(markdown, val_set, results, rows, osp.basename(picture),
                     sizes[0], torch.get_num_threads(), score_thr)
    return Comparison(val_set, results, rows, markdown, picture)
