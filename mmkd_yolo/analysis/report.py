"""Markdown of the comparison (``compare.md``) and of ``tools/test.py``'s per-class AP."""
from __future__ import annotations

import math
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from .matching import ImageMatch
from .val_set import ValSet

#: The COCO metric's keys shown side by side, with their column titles.
SUMMARY_KEYS = (('coco/bbox_mAP', 'mAP@.5:.95'), ('coco/bbox_mAP_50', 'mAP@.5'),
                ('coco/bbox_mAP_s', 'AP small'), ('coco/bbox_mAP_m', 'AP medium'),
                ('coco/bbox_mAP_l', 'AP large'))


@dataclass
class ModelResult:
    """One checkpoint, evaluated.

    Attributes:
        name (str): Its name in the report.
        config (str): Its config file.
        checkpoint (str): Its checkpoint file.
        weights (str): What was evaluated (e.g. "the student (EMA weights) of ...").
        metrics (dict): What ``runner.test()`` returned (``coco/...``, rounded to 3
            decimals by mmdet's ``CocoMetric``, as ``tools/test.py`` prints them).
        predictions (str): Its predictions, COCO json.
        params (int): Parameters.
        gflops (float): GFLOPs per image at the test size.
        ms (float): Median CPU ms per image (network alone).
    """
    name: str
    config: str
    checkpoint: str
    weights: str
    metrics: Dict[str, float]
    predictions: str
    params: int
    gflops: float
    ms: float


def class_ap(metrics: Dict[str, float], cls: str) -> float:
    """A class's AP@.5:.95 from ``CocoMetric(classwise=True)``'s metrics (NaN when the
    val set has no box of it)."""
    return float(metrics.get(f'coco/{cls}_precision', math.nan))


def _ap(value: float) -> str:
    # COCO's -1 (no object of that size) and NaN (no object of that class): not a score
    return 'n/a' if value is None or math.isnan(value) or value < 0 else f'{value:.3f}'


def _delta(value: float, ref: float) -> str:
    if any(v is None or math.isnan(v) or v < 0 for v in (value, ref)):
        return 'n/a'
    return f'{100 * (value - ref):+.1f}'


def results_table(models: Sequence[ModelResult]) -> List[str]:
    """mAP, mAP@.5, AP by object size, parameters, GFLOPs and CPU ms of each model, with
    the difference to the first model (AP points) beside each AP."""
    ref = models[0].metrics
    lines = ['| model | ' + ' | '.join(title for _, title in SUMMARY_KEYS) +
             ' | parameters | GFLOPs | CPU ms / image |',
             '|---' * (len(SUMMARY_KEYS) + 4) + '|']
    for i, m in enumerate(models):
        cells = []
        for key, _ in SUMMARY_KEYS:
            value = m.metrics.get(key, math.nan)
            cells.append(_ap(value) + (f' ({_delta(value, ref.get(key, math.nan))})'
                                       if i and _ap(value) != 'n/a' else ''))
        lines.append(f'| {m.name} | ' + ' | '.join(cells) +
                     f' | {m.params / 1e6:.2f}M | {m.gflops:.2f} | {m.ms:.1f} |')
    return lines


def per_class_table(val_set: ValSet, names: Sequence[str],
                    metrics: Sequence[Dict[str, float]]) -> List[str]:
    """Per class: its boxes in the val set, each model's AP@.5:.95 and (from the second
    model on) the difference to the first in AP points."""
    head = ['class', 'boxes', names[0]]
    for name in names[1:]:
        head += [name, f'Δ {name}']
    lines = ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
    for cls, boxes in zip(val_set.classes, val_set.boxes_per_class):
        aps = [class_ap(m, cls) for m in metrics]
        cells = [cls, str(boxes), _ap(aps[0])]
        for ap in aps[1:]:
            cells += [_ap(ap), _delta(ap, aps[0])]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def gains(val_set: ValSet, ref: Dict[str, float], other: Dict[str, float],
          top: int = 3) -> Tuple[List[Tuple[str, float]], List[Tuple[str, float]]]:
    """The classes whose AP@.5:.95 rose most and fell most from ``ref`` to ``other``.

    Returns:
        tuple: (gained, lost): up to ``top`` (class, difference in AP points) each, the
        largest change first; classes without a score in both are left out.
    """
    changes = []
    for cls in val_set.classes:
        a, b = class_ap(ref, cls), class_ap(other, cls)
        if not (math.isnan(a) or math.isnan(b)):
            changes.append((cls, 100 * (b - a)))
    changes.sort(key=lambda c: -c[1])
    gained = [c for c in changes if c[1] > 0][:top]
    lost = [c for c in reversed(changes) if c[1] < 0][:top]
    return gained, lost


def _changes(items: List[Tuple[str, float]]) -> str:
    return ', '.join(f'{cls} {d:+.1f}' for cls, d in items) or 'none'


def write_compare_md(path: str, val_set: ValSet, models: Sequence[ModelResult],
                     rows: Sequence[Tuple[int, List[ImageMatch]]], picture: str,
                     img_size: int, threads: int, score_thr: float) -> None:
    """Write ``compare.md``.

    Args:
        path (str): The file.
        val_set (ValSet): The val set evaluated on.
        models (list[ModelResult]): The models, the reference first.
        rows (list[tuple]): The images of the picture: (image id, each model's match).
        picture (str): The picture's file name, relative to ``path``'s folder.
        img_size (int): The test size (px).
        threads (int): CPU threads of the time measurement.
        score_thr (float): Least score of a box counted in the picture.
    """
    ref = models[0]
    lines = [
        '# Checkpoint comparison', '',
        f'Val set `{val_set.ann_file}`: {len(val_set.images)} images, {val_set.num_boxes} '
        f'boxes, {len(val_set.classes)} classes, evaluated at {img_size} px as '
        '`tools/test.py` evaluates (mmdet\'s COCO metric). Reference: '
        f'**{ref.name}**; the numbers in brackets and the Δ columns are each model minus '
        'it, in AP points.', '',
        '| model | config | checkpoint | evaluated |', '|---|---|---|---|']
    lines += [f'| {m.name} | `{m.config}` | `{m.checkpoint}` | {m.weights} |' for m in models]
    lines += ['', '## Results', ''] + results_table(models) + [
        '', f'CPU ms: median of 20 forward passes of the network alone (batch 1, {img_size} '
        f'px, {threads} threads, denormals flushed to zero; pre-processing and NMS not '
        'included). GFLOPs: the convolutions, 2 x multiply-adds. AP n/a: the val set has no '
        'object of that size or class.', '', '## Per-class AP@.5:.95', '']
    lines += per_class_table(val_set, [m.name for m in models], [m.metrics for m in models])
    lines += ['', '## Gained and lost most', '']
    for m in models[1:]:
        gained, lost = gains(val_set, ref.metrics, m.metrics)
        lines.append(f'- **{m.name}** vs {ref.name}: gained {_changes(gained)}; '
                     f'lost {_changes(lost)}')
    paths = {im['id']: im['path'] for im in val_set.images}
    lines += ['', '## Where they disagree most', '', f'![ground truth and each model\'s boxes '
              f'on the val images where they differ most]({picture})', '',
              f'Each model\'s boxes scored >= {score_thr:g} matched to the ground truth of '
              'their class (IoU >= 0.5, highest score first): images ranked by the spread of '
              'the models\' F1 on them; ties in val-set order, so the same images every '
              'run.', '', '| image | ' + ' | '.join(m.name for m in models) + ' |',
              '|---' * (len(models) + 1) + '|']
    for image_id, matches in rows:
        lines.append(f'| {osp.basename(paths[image_id])} | ' + ' | '.join(
            f'F1 {x.f1:.2f} ({x.tp} found, {x.fp} false, {x.fn} missed)' for x in matches) +
            ' |')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_per_class_ap(path: str, title: str, val_set: ValSet,
                       metrics: Dict[str, float]) -> None:
    """Write ``tools/test.py``'s per-class AP (markdown).

    Args:
        path (str): The file.
        title (str): What was evaluated.
        val_set (ValSet): The val set.
        metrics (dict): What ``runner.test()`` returned.
    """
    table = per_class_table(val_set, ['AP@.5:.95'], [metrics])
    summary = ', '.join(f'{title_} {_ap(metrics.get(key, math.nan))}'
                        for key, title_ in SUMMARY_KEYS)
    with open(path, 'w') as f:
        f.write('\n'.join([f'# Per-class AP: {title}', '',
                           f'Val set `{val_set.ann_file}`: {len(val_set.images)} images, '
                           f'{val_set.num_boxes} boxes. {summary}.', ''] + table) + '\n')
