"""The one place that decides what a checkpoint is and how its tensors fit a detector.

Three kinds of file reach the tools: an Ultralytics YOLOv5 ``.pt`` (converted without
running its pickle), an mmengine / mmyolo checkpoint of a detector, and a distillation
checkpoint (student under ``architecture.``, teacher and connectors beside it). Every
user of weights reads them through :func:`read_detector_weights` and fits them with
:func:`fit_detector_weights` under the policy of its use:

* ``'evaluate'`` (``tools/test.py``, export, inference): every tensor of the detector
  present with its shape, nothing left over; anything else is an error, since a
  half-loaded model scores a wrong number without a word (mmengine only logs it);
* ``'init'`` (``--weights``): tensors matched by name and shape, the rest left to train
  (a head for other classes, as Ultralytics fine-tunes), at least one must fit;
* ``'teacher'``: by name and shape with a ``Transferred N/M items`` report, but a head
  for another class count or of another width (a YOLOv5-n checkpoint for an -s teacher),
  or nothing fitting, is an error (a wrong teacher teaches garbage).

mmengine's ``CheckpointLoader`` decides *where* a file is read from; this module decides
what is in it, which mmengine leaves to the caller.
"""
from __future__ import annotations

import logging
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch

from ..errors import CheckpointError
from ..fileio import cache_dir, file_sha256, load_checkpoint_file, save_atomic
from ..models.detector_cfg import mmyolo_yolov5_config, yolov5_size
from .yolov5_to_mmyolo import is_ultralytics_checkpoint, load_or_convert

#: What each use does with tensors that do not fit (see the module docstring).
POLICIES = ('evaluate', 'init', 'teacher')
#: Input channels of mmyolo's YOLOv5 prediction convs (strides 8, 16, 32) at
#: ``widen_factor=1`` (its neck's ``out_channels``): a head's width is the model's.
YOLOV5_HEAD_IN_CHANNELS = (256, 512, 1024)
_STUDENT = 'architecture.'


@dataclass
class DetectorWeights:
    """A checkpoint's detector weights, whatever file they came in.

    Attributes:
        kind (str): ``'ultralytics'``, ``'distillation'`` or ``'detector'``.
        state_dict (OrderedDict): The detector's tensors, named as in mmyolo's
            ``YOLODetector`` (a distillation checkpoint's student; the EMA weights where
            the checkpoint has them, unless asked otherwise).
        path (str): The file given.
        loadable (str, optional): A file that mmengine's loading turns into exactly these
            weights (the cached conversion of an Ultralytics ``.pt``, the file itself
            for a detector checkpoint); None where it would not (a distillation
            checkpoint, raw weights of an EMA checkpoint): see
            :func:`detector_checkpoint_file`.
        ema (bool): Whether the EMA weights were taken.
        meta (dict): The checkpoint's meta (an Ultralytics conversion: class count,
            depth/width, anchors).
    """
    kind: str
    state_dict: 'OrderedDict[str, torch.Tensor]'
    path: str
    loadable: Optional[str]
    ema: bool
    meta: Dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """e.g. 'the student (EMA weights) of distillation checkpoint X'."""
        weights = 'EMA weights' if self.ema else 'raw weights'
        if self.kind == 'distillation':
            return f'the student ({weights}) of distillation checkpoint {self.path}'
        if self.kind == 'ultralytics':
            return f'Ultralytics checkpoint {self.path} (converted: {self.loadable})'
        return f'detector checkpoint {self.path} ({weights})'


def _tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) for k in obj) and any(isinstance(v, torch.Tensor)
                                                 for v in obj.values())


def read_detector_weights(path: str, use_ema: bool = True) -> DetectorWeights:
    """Read ``path`` and return the detector weights it holds.

    Args:
        path (str): An Ultralytics ``.pt``, an mmengine checkpoint (``state_dict``, and
            ``ema_state_dict`` when trained with EMA), or a plain saved state dict.
        use_ema (bool): Take the EMA weights where there are both. mmengine's
            ``EMAHook`` saves the EMA weights under ``state_dict`` and the raw ones,
            prefixed ``module.``, under ``ema_state_dict``. Defaults to True.

    Returns:
        DetectorWeights: Its kind and the detector's tensors.

    Raises:
        CheckpointError: Missing, unreadable, unsafe, or no tensors in it.
    """
    if not osp.isfile(path):
        raise CheckpointError(f'checkpoint {path!r} does not exist; check the path.')
    if is_ultralytics_checkpoint(path):
        ckpt, cached = load_or_convert(path)
        return DetectorWeights('ultralytics', OrderedDict(ckpt['state_dict']), path, cached,
                               bool(ckpt['meta'].get('ema')), dict(ckpt['meta']))
    ckpt = load_checkpoint_file(path, map_location='cpu')
    # meta is only carried along: one of another type (a foreign or damaged file) is
    # dropped rather than read
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    meta = dict(meta) if isinstance(meta, dict) else {}
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        state, has_ema = ckpt['state_dict'], 'ema_state_dict' in ckpt
    elif isinstance(ckpt, dict) and isinstance(ckpt.get('model'), dict):
        state, has_ema = ckpt['model'], False
    else:
        state, has_ema = ckpt, False
    # what mmengine's own loading reads: ``state_dict``, else the whole dict (a
    # ``{'model': ...}`` file would load nothing, with a mere warning)
    native = state is ckpt or (isinstance(ckpt, dict) and 'state_dict' in ckpt)
    if not _tensor_dict(state):
        raise CheckpointError(
            f'{path!r} holds no state dict (found {type(state).__name__}): give an mmengine '
            'checkpoint (.pth) of an mmyolo YOLOv5 model, a distillation checkpoint, or an '
            'Ultralytics YOLOv5 .pt.')
    ema = has_ema and use_ema
    if has_ema and not use_ema:
        raw = ckpt['ema_state_dict']
        if not _tensor_dict(raw):
            raise CheckpointError(
                f'{path!r} has an ema_state_dict that holds no tensors (found '
                f'{type(raw).__name__}), so its raw weights cannot be taken: use its EMA '
                'weights (the default) or another checkpoint.')
        state = {k[len('module.'):]: v for k, v in raw.items() if k.startswith('module.')}
    state = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                        for k, v in state.items() if isinstance(v, torch.Tensor))
    if any(k.startswith(_STUDENT) for k in state):
        student = OrderedDict((k[len(_STUDENT):], v) for k, v in state.items()
                              if k.startswith(_STUDENT))
        return DetectorWeights('distillation', student, path, None, ema, meta)
    loadable = path if native and not (has_ema and not use_ema) else None
    return DetectorWeights('detector', state, path, loadable, ema, meta)


@dataclass
class FitReport:
    """How a checkpoint's tensors fit a model (names of the model's state dict).

    Attributes:
        fit (OrderedDict): The tensors to load (same name, same shape).
        missing (list[str]): Model tensors the checkpoint does not give.
        mismatched (list[str]): Tensors of both with other shapes.
        unexpected (list[str]): Checkpoint tensors the model has no place for.
    """
    fit: 'OrderedDict[str, torch.Tensor]'
    missing: List[str]
    mismatched: List[str]
    unexpected: List[str]

    def summary(self) -> str:
        """Counts and the first names of each kind of misfit, in one line."""
        parts = [f'{len(self.fit)} fit']
        for what, names in (('missing', self.missing), ('of other shape', self.mismatched),
                            ('unexpected', self.unexpected)):
            parts.append(f'{len(names)} {what}' + (f' ({short_list(names)})' if names else ''))
        return ', '.join(parts)


def fit_detector_weights(model_state: Dict[str, torch.Tensor], weights: DetectorWeights,
                         policy: str, what: str = 'the model',
                         num_priors: Optional[int] = None) -> FitReport:
    """Match ``weights`` to a model's state dict under the policy of its use.

    Args:
        model_state (dict): The model's ``state_dict()`` (only names and shapes are read).
        weights (DetectorWeights): From :func:`read_detector_weights`.
        policy (str): ``'evaluate'``, ``'init'`` or ``'teacher'`` (module docstring).
        what (str): How errors name the model (e.g. "the detector of CONFIG").
        num_priors (int, optional): Anchors per cell of the head, to name class counts
            in errors. Defaults to YOLOv5's 3.

    Returns:
        FitReport: What to load and what did not fit.

    Raises:
        CheckpointError: The weights do not fit as the policy requires.
    """
    if policy not in POLICIES:
        raise ValueError(f'policy must be one of {POLICIES}, got {policy!r}')
    fit, mismatched, unexpected = OrderedDict(), [], []
    for key, value in weights.state_dict.items():
        if key not in model_state:
            unexpected.append(key)
        elif value.shape != model_state[key].shape:
            mismatched.append(key)
        else:
            fit[key] = value
    missing = [k for k in model_state if k not in weights.state_dict]
    report = FitReport(fit, missing, mismatched, unexpected)
    src = weights.describe()
    if policy == 'evaluate' and (missing or mismatched or unexpected):
        raise CheckpointError(
            f'{src} does not fit {what} ({report.summary()}): evaluating it would score '
            'partly random weights. Give the config the checkpoint was trained with (for a '
            'distillation run, its config or the student\'s; --data for its classes).')
    if policy == 'teacher' and any('convs_pred' in k for k in mismatched):
        key = next(k for k in mismatched if 'convs_pred' in k)
        theirs, ours = weights.state_dict[key].shape, model_state[key].shape
        # each of the head's prediction convs has num_priors * (5 + num_classes) outputs
        priors = num_priors or 3
        classes = (f'teacher weights {weights.path!r} are for {theirs[0] // priors - 5} '
                   f'classes, but the teacher config has num_classes={ours[0] // priors - 5}')
        if theirs[1:] != ours[1:]:  # other input channels: a YOLOv5 of another width
            level = int(key.split('convs_pred.')[1].split('.')[0])
            widths = [shape[1] / YOLOV5_HEAD_IN_CHANNELS[level] for shape in (theirs, ours)]
            raise CheckpointError(yolov5_width_error(weights.path, *widths) + (
                f' (Also, {classes}.)' if theirs[0] != ours[0] else ''))
        raise CheckpointError(
            f'{classes}. Set the teacher\'s num_classes to the checkpoint\'s, or use weights '
            'trained on your data.')
    if not fit:
        raise CheckpointError(
            f'no tensor of {src} fits {what} (0/{len(model_state)} by name and shape): the '
            'file is for another architecture; check the config and the weights.')
    return report


def yolov5_width_error(path: str, theirs: float, ours: float) -> str:
    """What to say when teacher weights are a YOLOv5 of another ``widen_factor`` than the
    config's teacher: both widths and sizes, and the config to give."""
    def named(widen: float) -> str:
        size = yolov5_size(widen)
        return f'{widen:.3g} ({"custom" if size == "?" else size})'

    size = yolov5_size(theirs)
    example = '' if size == '?' else f", e.g. --t-cfg '{mmyolo_yolov5_config(size)}'"
    return (f'teacher weights {path!r} are a YOLOv5 of widen_factor {named(theirs)}, the '
            f"config's teacher is {named(ours)}: give the teacher's config with "
            f'--t-cfg{example}.')


def anchor_mismatch(model: torch.nn.Module, weights: DetectorWeights) -> Optional[str]:
    """Why an Ultralytics checkpoint's anchors do not fit ``model`` (None when they do).

    AutoAnchor changes a checkpoint's anchors without changing any tensor's shape: the
    weights load, and every box is decoded with the wrong anchor sizes. Only Ultralytics
    checkpoints record their anchors (the converter keeps them in ``meta``).
    """
    anchors = weights.meta.get('anchors') if weights.kind == 'ultralytics' else None
    head = getattr(model, 'bbox_head', None)
    generator = getattr(head, 'prior_generator', None)
    if anchors is None or generator is None or not hasattr(generator, 'base_sizes'):
        return None
    config_anchors = [[tuple(float(v) for v in a) for a in level]
                      for level in generator.base_sizes]
    if all(abs(a - b) <= 0.5 for la, lb in zip(anchors, config_anchors)
           for pa, pb in zip(la, lb) for a, b in zip(pa, pb)):
        return None
    return (f'{weights.path!r} was trained with anchors {anchors} (e.g. by autoanchor), the '
            f'config has {config_anchors}: boxes would be decoded with the wrong anchor '
            'sizes. Set model.bbox_head.prior_generator.base_sizes (for a distillation '
            "config, the student's and the teacher's) to the checkpoint's anchors.")


def fit_detector(model: torch.nn.Module, weights: DetectorWeights, policy: str,
                 what: str = 'the model') -> FitReport:
    """:func:`fit_detector_weights` on ``model``, and its anchors against an Ultralytics
    checkpoint's (:func:`anchor_mismatch`): an error for ``'evaluate'`` and
    ``'teacher'``, for ``'init'`` a warning in the log (the head retrains)."""
    head = getattr(getattr(model, 'bbox_head', None), 'head_module', None)
    report = fit_detector_weights(model.state_dict(), weights, policy, what,
                                  num_priors=getattr(head, 'num_base_priors', None))
    problem = anchor_mismatch(model, weights)
    if problem and policy == 'init':
        from mmengine.logging import print_log
        print_log(f'{what}: {problem}', 'current', logging.WARNING)
    elif problem:
        raise CheckpointError(problem)
    return report


def detector_checkpoint_file(weights: DetectorWeights) -> str:
    """A plain mmengine checkpoint of exactly ``weights``, for mmengine's own loading
    (``load_from``, ``init_cfg``): the file itself where it already is one, else a
    conversion cached by content under the cache folder."""
    if weights.loadable:
        return weights.loadable
    name = osp.splitext(osp.basename(weights.path))[0]
    tag = 'student-' if weights.kind == 'distillation' else ''
    cached = cache_dir('converted', f'{name}-{file_sha256(weights.path)[:16]}-{tag}'
                       f'{"ema" if weights.ema else "raw"}.pth')
    if not osp.isfile(cached):
        save_atomic(dict(state_dict=weights.state_dict,
                         meta=dict(weights.meta, source=osp.abspath(weights.path),
                                   kind=weights.kind, ema=weights.ema)), cached)
    return cached


def short_list(names: List[str], n: int = 5) -> str:
    """``'a, b, c, ... (+7)'``: the first ``n`` names of a long list."""
    return ', '.join(names[:n]) + (f', ... (+{len(names) - n})' if len(names) > n else '')
