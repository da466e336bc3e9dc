"""YOLOv5 teacher -> student distillation on mmrazor's ``SingleTeacherDistill``."""
from __future__ import annotations

import difflib
import math
from typing import Dict, List, Optional, Union

import torch
from mmcv.cnn import fuse_conv_bn
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from mmrazor.models import SingleTeacherDistill
from mmrazor.models.utils import add_prefix

from ..errors import ConfigError
from ..losses.yolov5_head_loss_base import weighs_images
from ..models.detector_cfg import resolve_detector_cfg
from ..models.mixed_batch import (image_weights_set, labeled_detection_loss, labeled_part,
                                  split_views, unlabeled_image_weights, unlabeled_mask)
from ..models.pseudo_labels import head_outputs_recorder, teacher_nms, with_pseudo_labels
from ..models.teacher_runtime import TeacherRuntime
from ..registry import MODELS
from .teacher_loading import keep_float32_teacher, load_teacher_weights

LossResults = Dict[str, torch.Tensor]


def _num_classes(model: BaseModel) -> int:
    head = getattr(model, 'bbox_head', None)
    if head is None or not hasattr(head, 'num_classes'):
        raise ConfigError(
            f'{type(model).__name__} has no bbox_head.num_classes: both teacher and '
            'student must be mmyolo YOLODetector configs (e.g. '
            "'mmyolo::yolov5/yolov5_s-v61_syncbn_fast_8xb16-300e_coco.py').")
    return head.num_classes


def check_unlabeled_weight(weight: float) -> None:
    """Refuse an unlabeled image's weight that is not finite and positive; the one check of
    ``--unlabeled-weight`` and ``YOLOv5Distill(unlabeled_weight=...)``.

    Raises:
        ConfigError: ``weight`` is not in (0, inf) (nan and inf included).
    """
    if not (weight > 0 and math.isfinite(weight)):
        raise ConfigError(f'unlabeled_weight {weight} (--unlabeled-weight) is not in (0, inf): '
                          'it is the weight of an unlabeled image in the output-distillation '
                          "loss, a labeled one's being 1 (e.g. 2).")


def check_pseudo_label_score(score: Optional[float]) -> None:
    """Refuse a pseudo-label score outside (0, 1); None (no pseudo-labels) passes. The one
    check of ``--unlabeled-pseudo-labels`` and ``YOLOv5Distill(pseudo_label_score_thr=...)``.

    Raises:
        ConfigError: ``score`` is not in (0, 1) (nan included).
    """
    if score is not None and not 0 < score < 1:
        raise ConfigError(f'pseudo_label_score_thr {score} (--unlabeled-pseudo-labels) is not '
                          "in (0, 1): it is the least score of a teacher's box kept as an "
                          "unlabeled image's detection target (e.g. 0.5).")


def _check_recorder_sources(recorders: Optional[dict], model: BaseModel,
                            role: str) -> None:
    """Fail early, naming the closest modules, when a recorder source does not exist."""
    names = [name for name, _ in model.named_modules()]
    for rec_name, rec_cfg in (recorders or {}).items():
        source = rec_cfg.get('source')
        if rec_cfg.get('type') in ('ModuleOutputs', 'ModuleInputs') and source not in names:
            close = difflib.get_close_matches(source, names, n=5, cutoff=0.5)
            raise ConfigError(
                f"{role}_recorders['{rec_name}'] records source='{source}', but the "
                f'{role} has no module of that name. Closest module names: {close}. '
                'Fix the source in distiller.' + f'{role}_recorders (YOLOv5 neck outputs are '
                "'neck.out_layers.0/1/2', head predictions 'bbox_head.head_module').")


@MODELS.register_module()
class YOLOv5Distill(SingleTeacherDistill):
    """Distill a frozen YOLOv5 teacher into a YOLOv5 student of the same family.

    Reuses mmrazor's ``SingleTeacherDistill`` for building the distiller, freezing the
    teacher (``requires_grad=False``) and the ``distillation_stopped`` switch of
    ``StopDistillHook``. It departs from it where
    YOLOv5 needs something else:

    * the teacher runs backbone + neck + head forward only, under ``torch.no_grad``:
      ``SingleTeacherDistill`` calls ``teacher(..., mode='loss')``, which also assigns
      targets and computes a loss nobody uses;
    * the teacher is an inference model: its BatchNorm is folded into its convolutions
      and it runs in channels-last memory format (see :meth:`_make_teacher_inference_only`),
      in bfloat16 where the hardware computes it natively (``teacher_precision``; its
      weights are then held in bfloat16), in onnxruntime on other CPUs
      (:class:`~mmkd_yolo.models.teacher_runtime.TeacherRuntime`); a checkpoint's
      rounded teacher is not loaded over the float32 one (resume);
    * the recorded tensors are dropped once the distillation losses are computed:
      mmrazor's recorders keep them until the next iteration, through the backward pass;
    * teacher weights are loaded leniently (tensors matched by name and shape) with a
      ``Transferred N/M items`` report, instead of mmengine's ``load_checkpoint``, which
      only warns on a mismatch and would leave a wrong teacher silently half-random;
    * a distillation loss may return a dict of parts (e.g. box / obj / cls), each logged
      as its own scalar ``distill.<loss name>_<part>``;
    * the output-distillation loss takes the student head's own box / obj / cls loss
      weights, so its balance against the student loss follows class count, image size
      and number of levels as mmyolo's YOLOv5 loss does;
    * in a batch with unlabeled images (``--unlabeled``) the detection loss sees the
      labeled ones only, or all with the teacher's confident boxes as the unlabeled
      ones' targets (``pseudo_label_score_thr``); the student may see its own view of the
      batch (``data_samples['student_inputs']``, ``--unlabeled-aug``), the teacher the
      batch as loaded; and the output-distillation loss may weigh the unlabeled images
      by ``unlabeled_weight``.

    Args:
        architecture (dict | BaseModel): The student, an mmyolo ``YOLODetector`` config
            (or ``dict(cfg_path='mmyolo::yolov5/...py')``, a config file's model).
        teacher (dict | BaseModel): The teacher, in the same forms.
        distiller (dict): A ``ConfigurableDistiller`` config: recorders, connectors,
            losses and ``loss_forward_mappings``.
        teacher_ckpt (str, optional): Teacher weights (an mmengine checkpoint or a plain
            state dict). Defaults to None (a randomly initialised teacher: for tests).
        teacher_precision (str): What runs the teacher forward: ``auto`` (bfloat16 on
            CPUs with AMX / AVX512-BF16, onnxruntime on other CPUs; bfloat16 on GPUs
            that compute it natively, float16 on older ones), ``fp32`` (autocast off,
            also under ``--amp``), ``bf16``, ``fp16`` (PyTorch autocast) or ``ort``
            (onnxruntime, float32, CPU). Its records are float32 for the losses.
            Defaults to 'auto'.
        unlabeled_weight (float): Weight of each unlabeled image's share of the
            output-distillation losses (those with ``image_weights``, e.g.
            :class:`~mmkd_yolo.losses.YOLOv5OutputDistillLoss`), the labeled images'
            being 1 (``--unlabeled-weight``). Feature losses (mmrazor's
            ``ChannelWiseDivergence``) are not weighted. Defaults to 1.
        pseudo_label_score_thr (float, optional): On a batch with unlabeled images, the
            teacher's boxes on them scoring above this (in (0, 1)) become their detection
            targets (:mod:`~mmkd_yolo.models.pseudo_labels`), and the student's detection
            loss covers every image (``--unlabeled-pseudo-labels``). Defaults to None
            (the detection loss on the labeled images only).
        data_preprocessor (dict, optional): Defaults to the student's.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 architecture: Union[dict, BaseModel],
                 teacher: Union[dict, BaseModel],
                 distiller: dict,
                 teacher_ckpt: Optional[str] = None,
                 teacher_precision: str = 'auto',
                 unlabeled_weight: float = 1.0,
                 pseudo_label_score_thr: Optional[float] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        check_unlabeled_weight(unlabeled_weight)
        check_pseudo_label_score(pseudo_label_score_thr)
        if isinstance(architecture, dict):
            architecture = MODELS.build(resolve_detector_cfg(architecture))
        if isinstance(teacher, dict):
            teacher = MODELS.build(resolve_detector_cfg(teacher))
        student = architecture
        s_nc, t_nc = _num_classes(student), _num_classes(teacher)
        if s_nc != t_nc:
            raise ConfigError(
                f'teacher predicts {t_nc} classes but the student {s_nc}: distillation '
                'needs the same classes in the same order. Use a teacher trained on the '
                'student\'s data, and set num_classes of both (or pass --data).')
        _check_recorder_sources(distiller.get('student_recorders'), student, 'student')
        _check_recorder_sources(distiller.get('teacher_recorders'), teacher, 'teacher')

        super().__init__(
            distiller=distiller,
            teacher=teacher,
            teacher_ckpt=None,
            architecture=student,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.teacher_ckpt = teacher_ckpt
        self.teacher_precision = teacher_precision
        self.unlabeled_weight = float(unlabeled_weight)
        self.pseudo_label_score_thr = pseudo_label_score_thr
        self.teacher_head_recorder = None
        if pseudo_label_score_thr is not None:
            self.teacher_head_recorder = head_outputs_recorder(
                self.distiller.teacher_recorders.recorders)
            teacher_nms(self.teacher.bbox_head)  # at build, not at the first training step
        self.teacher_runtime = TeacherRuntime(self.teacher, self.distiller.teacher_recorders,
                                              teacher_precision)
        self.teacher_transferred = None
        if teacher_ckpt:
            self.teacher_transferred = load_teacher_weights(self.teacher, teacher_ckpt)
            # keep init_weights() from overwriting the loaded teacher
            self.teacher._is_init = True
        self._make_teacher_inference_only()
        keep_float32_teacher(self.teacher, teacher_ckpt)
        self._check_feature_widths()
        self._check_unlabeled_weight_taken()
        for loss in self.distiller.distill_losses.values():
            if hasattr(loss, 'inherit_head_weights'):
                loss.inherit_head_weights(self.student.bbox_head)
        MMLogger.get_current_instance().info(
            f'YOLOv5Distill: student {_count(self.student)} params, teacher '
            f'{_count(self.teacher)} params (frozen), connectors '
            f'{_count(self.distiller.connectors)} params')

    def _check_unlabeled_weight_taken(self) -> None:
        """An ``unlabeled_weight`` other than 1 needs a loss that weighs images
        (``image_weights``): without one it would change nothing, unsaid."""
        if self.unlabeled_weight == 1.0 or any(
                weighs_images(loss) for loss in self.distiller.distill_losses.values()):
            return
        losses = {name: type(loss).__name__
                  for name, loss in self.distiller.distill_losses.items()}
        raise ConfigError(
            f'unlabeled_weight {self.unlabeled_weight:g} (--unlabeled-weight) weighs the '
            'unlabeled images in the output-distillation loss, but none of this '
            f'distiller\'s losses {losses} weighs images (image_weights): add '
            "dict(type='mmkd_yolo.YOLOv5OutputDistillLoss') to distiller.distill_losses "
            '(the kd-out configs and --d-output do), or leave unlabeled_weight at 1.')

    def _make_teacher_inference_only(self) -> None:
        """Fold the teacher's BatchNorm into its convolutions; use channels-last memory.

        The teacher never trains and its BatchNorm only ever runs in eval mode, so
        ``conv -> BN`` is one affine map: folding it (mmcv's ``fuse_conv_bn``) gives the
        same outputs up to float rounding and leaves no BN statistics that could drift.
        With channels-last tensors as well, the teacher forward costs about a third less
        on CPU (``benchmarks/kd_speed.py``). Done once, after the weights are loaded, so
        checkpoints hold the folded teacher and resume rebuilds the same structure.
        """
        fuse_conv_bn(self.teacher)
        for param in self.teacher.parameters():  # folded convs have new bias params
            param.requires_grad = False
        self.teacher.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def _check_feature_widths(self) -> None:
        """Probe both models once (eval mode, a 64 px image) and compare what each
        feature loss would receive: a student width that differs from the teacher's with
        no connector is a config error to report now, not a shape error mid-training."""
        was_training = self.training
        self.eval()
        x = torch.zeros(1, 3, 64, 64, device=next(self.student.parameters()).device)
        try:
            # in float32 whatever teacher_precision says: the probe runs where the model is
            # built (the CPU), before the Runner moves it; fp16 is for CUDA only
            with torch.no_grad(), self.distiller.teacher_recorders:
                self.teacher._forward(x)
            with self.distiller.student_recorders:
                self.student._forward(x)
            for loss_name, mapping in self.distiller.loss_forward_mappings.items():
                records = {}
                for arg, rec in mapping.items():
                    records[arg] = (self.distiller.get_record(**rec), rec)
                s_args = [(a, r) for a, r in records.items() if r[1]['from_student']]
                t_args = [(a, r) for a, r in records.items() if not r[1]['from_student']]
                for (s_arg, (s_val, s_rec)), (_, (t_val, t_rec)) in zip(s_args, t_args):
                    if not (isinstance(s_val, torch.Tensor) and s_val.dim() == 4
                            and isinstance(t_val, torch.Tensor)):
                        continue
                    if s_val.shape[1] != t_val.shape[1] and s_rec.get('connector'):
                        raise ConfigError(
                            f'{loss_name}: connector {s_rec["connector"]!r} outputs '
                            f'{s_val.shape[1]} channels but the teacher\'s '
                            f'{t_rec["recorder"]!r} has {t_val.shape[1]}: set its '
                            f'out_channel={t_val.shape[1]} (and in_channel to the '
                            'student\'s width).')
                    if s_val.shape[1] != t_val.shape[1]:
                        raise ConfigError(
                            f'{loss_name}: the student feature {s_rec["recorder"]!r} has '
                            f'{s_val.shape[1]} channels, the teacher\'s '
                            f'{t_rec["recorder"]!r} {t_val.shape[1]}, and no connector '
                            'maps one to the other. Add to distiller.connectors '
                            f"'{s_rec['recorder']}_s': dict(type='ConvModuleConnector', "
                            f'in_channel={s_val.shape[1]}, out_channel={t_val.shape[1]}, '
                            'kernel_size=1, norm_cfg=None, act_cfg=None) and set '
                            f"connector='{s_rec['recorder']}_s' in loss_forward_mappings"
                            f"['{loss_name}']['{s_arg}'] (or use --d-feature, which does).")
        finally:
            self.train(was_training)

    def teacher_forward(self, batch_inputs: torch.Tensor) -> None:
        """Backbone + neck + head of the teacher, recorded by the teacher recorders, in
        the runtime ``teacher_precision`` resolves to (:class:`TeacherRuntime`); the
        records in float32, as the losses expect them.

        Args:
            batch_inputs (Tensor): Preprocessed images, shape (N, 3, H, W).
        """
        self.teacher_runtime.forward(batch_inputs)

    def train(self, mode: bool = True) -> 'YOLOv5Distill':
        """Set the student (and connectors) to ``mode``; the teacher stays in eval."""
        super().train(mode)
        self.teacher.eval()
        return self

    def loss(self,
             batch_inputs: torch.Tensor,
             data_samples: Optional[Union[List[BaseDataElement], dict]] = None) -> LossResults:
        """Student detection losses plus distillation losses.

        Args:
            batch_inputs (Tensor): Images, shape (N, 3, H, W), the teacher's view (and
                the student's, unless ``data_samples`` holds ``student_inputs``).
            data_samples: The student's training targets, as mmyolo's data
                preprocessor gives them.

        Returns:
            dict[str, Tensor]: ``student.loss_cls/loss_bbox/loss_obj`` and, until
            distillation is stopped, ``distill.<name>`` (or ``distill.<name>_<part>``).
        """
        losses: LossResults = {}
        student_inputs, data_samples = split_views(data_samples)
        unlabeled = unlabeled_mask(data_samples)
        if unlabeled is not None:
            if self.distillation_stopped and unlabeled.any():
                # nothing to learn from images without labels any more: leave them out
                # (the student's view differs from the teacher's on those images only)
                batch_inputs, data_samples = labeled_part(batch_inputs, data_samples,
                                                          unlabeled)
                unlabeled = data_samples['unlabeled']
                student_inputs = None
            # per-iteration counts of the images used, logged (no 'loss' in the names:
            # not summed into the loss)
            losses['data.labeled'] = (~unlabeled).sum().float()
            losses['data.unlabeled'] = unlabeled.sum().float()
            if not unlabeled.any():
                unlabeled = None
        if not self.distillation_stopped:
            self.teacher_forward(batch_inputs)
            if unlabeled is not None and self.pseudo_label_score_thr is not None:
                data_samples, losses['data.pseudo_boxes'] = with_pseudo_labels(
                    data_samples, self.teacher.bbox_head,
                    self.distiller.get_record(self.teacher_head_recorder, False), unlabeled,
                    self.pseudo_label_score_thr, batch_inputs.shape[-2:])
        student_view = batch_inputs if student_inputs is None else student_inputs
        with self.distiller.student_recorders:
            if unlabeled is None or self.pseudo_label_score_thr is not None:
                student_losses = self.student(student_view, data_samples, mode='loss')
            else:
                student_losses = labeled_detection_loss(self.student, student_view,
                                                        data_samples, unlabeled)
        losses.update(add_prefix(student_losses, 'student'))
        if self.distillation_stopped:
            # The connectors get no gradient once distillation stops, and DDP (without
            # find_unused_parameters) fails on parameters without one: a zero-valued
            # term keeps them in the graph, as mmdet's heads do for empty targets.
            idle = [p.sum() * 0 for p in self.distiller.parameters() if p.requires_grad]
            if idle:
                losses['student.loss_bbox'] = losses['student.loss_bbox'] + sum(idle)
            self._release_records()
            return losses
        weights = unlabeled_image_weights(unlabeled, self.unlabeled_weight)
        with image_weights_set(self.distiller.distill_losses.values(), weights):
            distill_losses = self.distiller.compute_distill_losses()
        for name, value in distill_losses.items():
            if isinstance(value, dict):
                for part, part_value in value.items():
                    losses[f'distill.{name}_{part}'] = part_value
            else:
                losses[f'distill.{name}'] = value
        self._release_records()
        return losses

    def _release_records(self) -> None:
        """Drop the recorded tensors once the distillation losses are computed.

        mmrazor's recorders keep them until the next iteration resets them, so through
        the backward pass; at 320 px, batch 16, 80 classes the head outputs alone are
        34 MB per model, and the student's need not outlive its own loss's graph.
        """
        for manager in (self.distiller.student_recorders, self.distiller.teacher_recorders):
            for recorder in manager.recorders.values():
                recorder.reset_data_buffer()


def _count(module: torch.nn.Module) -> str:
    n = sum(p.numel() for p in module.parameters())
    return f'{n / 1e6:.2f}M' if n >= 1e5 else str(n)
