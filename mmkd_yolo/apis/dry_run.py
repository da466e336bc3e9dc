"""A distillation config's dry run: build it, push one generated batch through, report."""
from __future__ import annotations

import time
from typing import Any, List

import torch
from mmengine.config import Config
from torch import nn

from ..datasets import split_batch
from .schedule import schedule_summary


def _shape(data: Any) -> str:
    if isinstance(data, torch.Tensor):
        return 'x'.join(str(d) for d in data.shape)
    if isinstance(data, (list, tuple)):
        return '[' + ', '.join(_shape(d) for d in data) + ']'
    return type(data).__name__


def conv_gflops(model: nn.Module, forward, x: torch.Tensor) -> float:
    """Multiply-adds x 2 of every Conv2d for one image of ``x``'s size, in GFLOPs."""
    total = [0]

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        total[0] += 2 * output.numel() * (module.in_channels // module.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            forward(x[:1])
    finally:
        for h in handles:
            h.remove()
    return total[0] / 1e9


def generated_batch(img_size: int, batch_size: int, num_classes: int,
                    num_unlabeled: int = 0) -> dict:
    """A collated mmyolo training batch: random images, two boxes each; the last
    ``num_unlabeled`` images without boxes and marked in ``unlabeled`` (as --unlabeled
    batches come)."""
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, 256, (batch_size, 3, img_size, img_size), dtype=torch.uint8,
                           generator=g)
    rows = []
    for i in range(batch_size - num_unlabeled):
        for j in range(2):
            x0, y0 = (0.1 + 0.4 * j) * img_size, (0.2 + 0.3 * j) * img_size
            rows.append([i, (i + j) % num_classes, x0, y0, x0 + img_size * 0.3,
                         y0 + img_size * 0.25])
    samples = dict(bboxes_labels=torch.tensor(rows))
    if num_unlabeled:
        samples['unlabeled'] = torch.arange(batch_size) >= batch_size - num_unlabeled
    return dict(inputs=inputs, data_samples=samples)


def _unlabeled_in_batch(cfg: Config, batch_size: int) -> int:
    """How many of the dry run's images are unlabeled: the share of ``--unlabeled``
    batches (at least one and one labeled image left, when the batch has room)."""
    sampler = (cfg.get('train_dataloader') or {}).get('sampler') or {}
    if not sampler.get('type', '').endswith('LabeledEpochSampler') or batch_size < 2:
        return 0
    unlabeled = split_batch(batch_size, sampler['source_ratio'], at_least_one=False)[1]
    return min(batch_size - 1, max(1, unlabeled))


def dry_run(cfg: Config, img_size: int = 320, batch_size: int = 2) -> List[str]:
    """Build ``cfg.model``, run one loss forward and backward, and describe everything.

    Args:
        cfg (Config): A :class:`YOLOv5Distill` config (after any command-line changes).
        img_size (int): Side of the generated images. Defaults to 320.
        batch_size (int): Images in the batch. Defaults to 2.

    Returns:
        list[str]: The report, line by line.
    """
    from mmengine.logging import MMLogger

    from ..registry import MODELS
    logger = MMLogger.get_current_instance()
    start = time.time()
    model = MODELS.build(cfg.model)
    model.init_weights()  # as the Runner does: --weights (the student's init_cfg) applies
    built = time.time() - start
    model.train()
    nc = model.student.bbox_head.num_classes
    num_unlabeled = _unlabeled_in_batch(cfg, batch_size)
    data = model.data_preprocessor(generated_batch(img_size, batch_size, nc, num_unlabeled),
                                   True)
    losses = model(**data, mode='loss')
    bad = [k for k, v in losses.items() if not torch.isfinite(v.detach()).all()]
    if bad:
        from ..errors import NonFiniteLossError
        raise NonFiniteLossError(f'on a generated batch, {", ".join(bad)} are not finite: '
                                 'check loss weights and teacher weights.')
    total, _ = model.parse_losses(losses)
    total.backward()
    x = data['inputs']
    lines = [f'config built in {built:.1f}s; one batch of {batch_size} generated '
             f'{img_size}x{img_size} images, loss forward + backward in '
             f'{time.time() - start - built:.1f}s', f'schedule: {schedule_summary(cfg)}']
    if num_unlabeled:
        view = (type(model.data_preprocessor.student_aug).__name__
                if 'student_inputs' in data['data_samples'] else "the teacher's")
        detection = ('the detection loss on the others' if model.pseudo_label_score_thr is None
                     else "the detection loss on all, theirs against the teacher's boxes "
                     f'scoring > {model.pseudo_label_score_thr:g}: '
                     f'{float(losses["data.pseudo_boxes"]):.1f} an image on this batch')
        lines.append(f'unlabeled images: {num_unlabeled} of the {batch_size} (no boxes; '
                     f'{detection}; distillation on all; output '
                     f'distillation weighted {model.unlabeled_weight:g}; the student\'s '
                     f'view: {view})')
    # what the recorders record on this batch (loss() releases its records once used)
    with torch.no_grad():
        model.teacher_forward(x)
        with model.distiller.student_recorders:
            model.student._forward(x)
    records = [
        f'recorder {role}.{rec_name}: {type(recorder).__name__} on {recorder.source!r} -> '
        f'{_shape(recorder.get_record_data())}'
        for role, manager in (('student', model.distiller.student_recorders),
                              ('teacher', model.distiller.teacher_recorders))
        for rec_name, recorder in manager.recorders.items()
    ]
    for name, net, fwd in (
            ('student', model.student, model.student._forward),
            ('teacher', model.teacher, model.teacher_forward)):
        params = sum(p.numel() for p in net.parameters())
        lines.append(f'{name}: {type(net).__name__}, {params / 1e6:.2f}M parameters, '
                     f'{conv_gflops(net, fwd, x):.2f} GFLOPs per {img_size}px image, '
                     f'{net.bbox_head.num_classes} classes')
    if model.teacher_ckpt:
        n, m = model.teacher_transferred
        lines.append(f'teacher weights: transferred {n}/{m} items from {model.teacher_ckpt}')
    else:
        lines.append('teacher weights: none (a random teacher!) - set --t-weights')
    init = model.student.init_cfg
    lines.append(f'student weights: from {init["checkpoint"]}' if init and init.get('type') ==
                 'Pretrained' else 'student weights: random initialisation (--weights to start '
                 'from a checkpoint)')
    lines += records
    for conn_name, connector in model.distiller.connectors.items():
        conv = next(m for m in connector.modules() if isinstance(m, nn.Conv2d))
        lines.append(f'connector {conn_name}: {conv.in_channels} -> {conv.out_channels} '
                     f'channels, {sum(p.numel() for p in connector.parameters())} parameters')
    if not model.distiller.connectors:
        lines.append('connectors: none')
    for key, value in losses.items():
        lines.append(f'loss {key}: {float(value.detach().sum()):.4f}')
    grads = [p.grad is not None for p in model.teacher.parameters()]
    lines.append(f'teacher gradients: {sum(grads)} of {len(grads)} tensors (must be 0)')
    logger.info('dry run done')
    return lines
