"""``--unlabeled``: distil on images without labels, beside the labeled training set."""
from __future__ import annotations

import copy
import json
import logging
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.config import Config
from mmengine.logging import print_log

from ..algorithms.yolov5_distill import check_pseudo_label_score, check_unlabeled_weight
from ..datasets import count_overlap, split_batch, unlabeled_coco_json
from ..datasets.dataset_cfg import leaf_datasets
from ..errors import ConfigError
from ..losses.yolov5_head_loss_base import weighs_images
from .config import inner_dataset, is_distill_cfg, type_name

#: Share of unlabeled images in a batch (``--unlabeled-ratio``). Measured on coco128 with a
#: quarter of the labels, 30 epochs (``benchmarks/kd_gain.py real-unlabeled``, variants
#: ``kd-out+unlabeled-r0.25`` / ``kd-out+unlabeled`` / ``-r0.75``): 0.212 / 0.231 / 0.264
#: mAP. An epoch is the labeled set once: with 16 labeled images, 0.25 and 0.5 both take 2
#: iterations an epoch (ceil(16/12), ceil(16/8)), so 0.5 over 0.25 is a gain at equal
#: compute; 0.75 takes 4 (twice as long), and at equal iterations 0.75 and 0.5 are within a
#: point (docs/en/benchmarks/unlabeled.md). Half: the best of the shares at equal iterations.
DEFAULT_UNLABELED_RATIO = 0.5
#: Weight of an unlabeled image's share of the output-distillation loss, a labeled one's
#: being 1 (``--unlabeled-weight``; Consistent-Teacher and Efficient Teacher weigh their
#: unlabeled loss 2 and 3). Measured at equal iterations against the labeled images alone
#: (``benchmarks/kd_gain.py demo-unlabeled`` / ``real-unlabeled``, variants
#: ``kd-out+unlabeled-w1/-w2`` and ``kd-out-2x-epochs``; docs/en/benchmarks/unlabeled.md):
#: at 1 the demo task (a student from scratch, a stronger teacher) is 6.5 +- 2.1 points
#: behind (5 seeds) and coco128 (a fine-tuned student, its own checkpoint as teacher)
#: 1.7 +- 0.6 ahead (6 runs); at 2, -0.8 +- 0.4 and -0.3 +- 1.0. 2 against 1: demo
#: +5.8 +- 2.5, coco128 -1.9 +- 0.7; 3 is lower than 2 on coco128 and level on the demo
#: (seed 0). 2: within a point of training longer on both tasks, a judgement between a
#: large loss on one task (at 1) and a small one on the other (at 2).
DEFAULT_UNLABELED_WEIGHT = 2.0
#: The student's view of the unlabeled images (``--unlabeled-aug``): ``none``, the
#: teacher's; ``strong``, a strong photometric augmentation of it
#: (:class:`~mmkd_yolo.models.UnlabeledPhotometricAug`). Off: at equal iterations (seed 0,
#: variants ``kd-out+unlabeled-2view-w2`` / ``-2view-pl``) it lowered the demo task's mAP:
#: 0.250 against 0.307 at weight 2, 0.200 against 0.303 with pseudo-labels.
DEFAULT_UNLABELED_AUG = 'none'
#: Least score of a teacher's box kept as an unlabeled image's detection target
#: (``--unlabeled-pseudo-labels``; Efficient Teacher and Unbiased Teacher keep boxes above
#: 0.5 to 0.7). Off (None: the unlabeled images get the distillation losses only): at equal
#: iterations (seed 0, variants ``kd-out+unlabeled-pl`` / ``-w2-pl``) level with training
#: longer on the demo task at weight 1 (0.303 against 0.304), lower at the default weight
#: (0.198 against 0.307), and 1.7 points lower on coco128 at weight 1.
DEFAULT_UNLABELED_PSEUDO_LABELS: Optional[float] = None
#: ``--unlabeled-aug`` -> the preprocessor's ``student_aug``.
UNLABELED_AUGS = {'none': None, 'strong': dict(type='mmkd_yolo.UnlabeledPhotometricAug')}


def apply_unlabeled(cfg: Config, sources: Sequence[str],
                    ratio: Optional[float] = None,
                    weight: Optional[float] = None,
                    aug: Optional[str] = None,
                    pseudo_labels: Optional[float] = None) -> List[str]:
    """Train on the labeled set and on unlabeled images, in every batch, in place.

    The training set becomes mmengine's ``ConcatDataset`` of the config's own (labeled)
    dataset and a :class:`~mmkd_yolo.datasets.YOLOv5UnlabeledDataset` of the images
    (the labeled set's pipeline and classes, those of its first dataset if it is a
    concatenation; Mosaic and MixUp mix within each set), drawn by mmdet's
    multi-source sampler with epochs of the labeled set
    (:class:`~mmkd_yolo.datasets.LabeledEpochSampler`): each batch holds
    ``int(ratio * batch_size)`` unlabeled images, the rest labeled
    (:func:`~mmkd_yolo.datasets.split_batch`). The batch's mask of
    unlabeled images reaches :class:`~mmkd_yolo.algorithms.YOLOv5Distill`, which computes
    the student's detection loss on the labeled images (on all with ``pseudo_labels``,
    the unlabeled ones against the teacher's boxes scoring above it) and the distillation
    losses on all (the output-distillation loss weighing the unlabeled ones by ``weight``,
    the student seeing them through ``aug``).

    ``weight``, ``aug`` and ``pseudo_labels`` set the model's keys only when given (not
    None): otherwise the config's own ``model.unlabeled_weight``,
    ``model.data_preprocessor.student_aug`` and ``model.pseudo_label_score_thr`` (from the
    file or ``--cfg-options``, applied before) stay, and the defaults (the
    ``DEFAULT_UNLABELED_*`` above) fill in what the config does not set.

    Args:
        cfg (Config): A distillation config with mmyolo's fast YOLOv5 data path
            (``yolov5_collate``, ``YOLOv5DetDataPreprocessor``), after ``--data`` and
            ``--img-size`` are applied.
        sources (Sequence[str]): Folders, globs, ``.txt`` lists or image files.
        ratio (float, optional): Share of unlabeled images in a batch, in (0, 1).
            Defaults to :data:`DEFAULT_UNLABELED_RATIO`.
        weight (float, optional): Weight of an unlabeled image in the output-distillation
            loss, > 0 (``YOLOv5Distill(unlabeled_weight=...)``).
        aug (str, optional): The student's view of the unlabeled images: ``none`` (the
            teacher's) or ``strong`` (:class:`~mmkd_yolo.models.UnlabeledPhotometricAug`).
        pseudo_labels (float, optional): Least score, in (0, 1), of a teacher's box kept
            as an unlabeled image's detection target
            (``YOLOv5Distill(pseudo_label_score_thr=...)``).

    Returns:
        list[str]: The unlabeled images used.
    """
    if not is_distill_cfg(cfg):
        raise ConfigError('--unlabeled needs a distillation config: images without labels '
                          'teach the student only through the teacher (the distillation '
                          'loss); a plain detector config has no teacher.')
    if ratio is None:
        ratio = DEFAULT_UNLABELED_RATIO
    if not 0 < ratio < 1:
        raise ConfigError(f'--unlabeled-ratio {ratio} is not in (0, 1): it is the share of '
                          'each batch taken by unlabeled images.')
    model = cfg.model
    # the config's own values (file or --cfg-options) where no option is given
    if weight is None:
        weight = model.get('unlabeled_weight')
    if weight is None:
        # the default weighs the output-distillation loss; a distiller without one (feature
        # losses of its own only) has nothing it acts on, and keeps 1
        weight = DEFAULT_UNLABELED_WEIGHT if _weighs_images(model) else 1.0
    if pseudo_labels is None:
        pseudo_labels = model.get('pseudo_label_score_thr', DEFAULT_UNLABELED_PSEUDO_LABELS)
    check_unlabeled_weight(weight)
    check_pseudo_label_score(pseudo_labels)
    if aug is not None and aug not in UNLABELED_AUGS:
        raise ConfigError(f'--unlabeled-aug {aug!r} is not one of {sorted(UNLABELED_AUGS)}: '
                          "'strong' gives the student a photometrically augmented view of "
                          "the unlabeled images, 'none' the teacher's.")
    loader = cfg.train_dataloader
    batch_size = loader.batch_size
    source_ratio = [1 - ratio, ratio]
    n_labeled, n_unlabeled = split_batch(batch_size, source_ratio)
    collate = dict(loader.get('collate_fn') or {})
    preprocessor = _preprocessor(cfg)
    if (type_name(collate) != 'yolov5_collate' or type_name(preprocessor) not in
            ('YOLOv5DetDataPreprocessor', 'YOLOv5UnlabeledDataPreprocessor')):
        raise ConfigError(
            "--unlabeled works on mmyolo's fast YOLOv5 data path (collate_fn "
            'yolov5_collate and YOLOv5DetDataPreprocessor, the *_fast_* configs); this '
            f"config has collate_fn {collate.get('type')!r} and data_preprocessor "
            f"{preprocessor.get('type')!r}.")
    labeled = inner_dataset(loader)
    names = list((labeled.get('metainfo') or {}).get('classes') or [])
    ann_file, images = unlabeled_coco_json(sources, names)
    unlabeled = dict(
        type='mmkd_yolo.YOLOv5UnlabeledDataset', data_root='', ann_file=ann_file,
        # every listed image is used: no minimum size (mmyolo's 32 px would drop small
        # images unsaid), and none has boxes to filter on
        data_prefix=dict(img=''), filter_cfg=dict(filter_empty_gt=False),
        pipeline=copy.deepcopy(labeled.get('pipeline', [])),
        # the pipeline's transforms are looked up in the labeled set's scope (mmyolo's)
        _scope_=labeled.get('_scope_', 'mmyolo'))
    for key in ('metainfo', 'backend_args'):
        if labeled.get(key) is not None:
            unlabeled[key] = copy.deepcopy(labeled[key])
    loader.dataset = dict(type='ConcatDataset', datasets=[loader.dataset, unlabeled])
    loader.sampler = dict(type='mmkd_yolo.LabeledEpochSampler', batch_size=batch_size,
                          source_ratio=source_ratio,
                          shuffle=(loader.get('sampler') or {}).get('shuffle', True))
    loader.batch_sampler = None
    collate['type'] = 'mmkd_yolo.yolov5_unlabeled_collate'
    loader.collate_fn = collate
    model.data_preprocessor = dict(copy.deepcopy(preprocessor),
                                   type='YOLOv5UnlabeledDataPreprocessor', _scope_='mmkd_yolo')
    if aug is None and 'student_aug' not in preprocessor:
        aug = DEFAULT_UNLABELED_AUG
    if aug is not None:
        model.data_preprocessor.pop('student_aug', None)
        if UNLABELED_AUGS[aug]:
            model.data_preprocessor['student_aug'] = copy.deepcopy(UNLABELED_AUGS[aug])
    model.unlabeled_weight = weight
    if pseudo_labels is not None:
        model.pseudo_label_score_thr = pseudo_labels
    _distil_to_the_end(cfg)
    print_log(f'--unlabeled: {len(images)} images from {list(sources)}; each batch of '
              f'{batch_size}: {n_labeled} labeled (detection and '
              f'distillation losses) + {n_unlabeled} unlabeled ({_unlabeled_losses(model)}; '
              f'{_student_view(model)}); an epoch is the labeled set once', 'current')
    overlap = count_overlap(images, _val_images(cfg))
    if overlap:
        print_log(f'{overlap} of the {len(images)} unlabeled images are also val images: '
                  'distilling on them makes the val mAP look better than it is; remove them '
                  'from the unlabeled sources.', 'current', logging.WARNING)
    return images


def _preprocessor(cfg: Config) -> dict:
    """The data preprocessor the distiller runs: its own, or the student's, completed by
    a typeless ``model.data_preprocessor`` (``--cfg-options
    model.data_preprocessor.student_aug.type=...`` on a config without one)."""
    own = cfg.model.get('data_preprocessor') or {}
    if own.get('type'):
        return own
    return dict(cfg.model.architecture.get('data_preprocessor') or {}, **own)


def _weighs_images(model: dict) -> bool:
    """Whether a loss of the distiller's config weighs images (:func:`weighs_images`)."""
    losses = ((model.get('distiller') or {}).get('distill_losses') or {}).values()
    return any(weighs_images(loss) for loss in losses)


def _unlabeled_losses(model: dict) -> str:
    """What the unlabeled images are trained with, from the model config's values."""
    score = model.get('pseudo_label_score_thr')
    targets = ('distillation loss only' if score is None else
               f"detection loss against the teacher's boxes scoring > {score:g} "
               '(--unlabeled-pseudo-labels) and distillation losses')
    return f"{targets}, output distillation weighted {model['unlabeled_weight']:g}"


def _student_view(model: dict) -> str:
    """How the student sees the unlabeled images, from the preprocessor's ``student_aug``."""
    student_aug = model.data_preprocessor.get('student_aug')
    names = [name for name, aug in UNLABELED_AUGS.items() if aug == (student_aug or None)]
    if names == ['none']:
        return '--unlabeled-aug none: teacher and student see the same images'
    view = ('the student sees them strongly augmented (colour, blur, noise, cutout), the '
            'teacher as loaded')
    if names:
        return f'--unlabeled-aug {names[0]}: {view}'
    return f"the config's student_aug {type_name(student_aug)}: {view}"


def _val_images(cfg: Config) -> List[str]:
    """The val set's image files, as its COCO json files name them (empty if it has none).

    Args:
        cfg (Config): The training config.

    Returns:
        list[str]: Image paths, of every dataset of a concatenated val set.
    """
    if not cfg.get('val_dataloader'):
        return []
    images = []
    for dataset in leaf_datasets(cfg.val_dataloader['dataset']):
        root = dataset.get('data_root') or ''
        path = osp.join(root, dataset.get('ann_file') or '')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            coco = json.load(f)
        prefix = osp.join(root, (dataset.get('data_prefix') or {}).get('img') or '')
        images += [osp.join(prefix, img['file_name']) for img in coco.get('images', [])]
    return images


def _distil_to_the_end(cfg: Config) -> None:
    """Switch off the configs' distillation stop for the last epochs, saying so.

    Once distillation stops, the unlabeled images teach nothing (they are left out of the
    forward pass) and each batch trains on its labeled share alone: with half of each
    batch unlabeled, the last epochs would run on half batches. Measured with a quarter
    of the labels (``benchmarks/kd_gain.py demo-unlabeled`` / ``real-unlabeled``,
    ``kd-out+unlabeled`` with and without the stop, docs/en/benchmarks/unlabeled.md): distilling
    to the end +9.0 points on the demo task (3/3), +0.2 on coco128 (within noise).
    """
    for hook in cfg.get('custom_hooks') or []:
        kind = type_name(hook)
        if kind == 'StopDistillLastEpochsHook' and hook.get('num_last_epochs'):
            print_log(f"--unlabeled: distilling to the end (StopDistillLastEpochsHook's "
                      f"num_last_epochs {hook['num_last_epochs']} -> 0): once distillation "
                      'stops, the unlabeled images teach nothing and each batch would '
                      'train on its labeled images alone.', 'current')
            hook['num_last_epochs'] = 0
        elif kind == 'StopDistillHook':  # mmrazor's, an absolute epoch: the user's choice
            print_log(f"--unlabeled with mmrazor's StopDistillHook (stop_epoch="
                      f"{hook.get('stop_epoch')}): from that epoch on the unlabeled images "
                      'are loaded but left out, and each batch trains on its labeled images '
                      'alone; remove the hook to distil to the end.', 'current',
                      logging.WARNING)
