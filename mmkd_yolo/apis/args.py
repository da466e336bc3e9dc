"""Command-line options shared by the tools, in OpenMMLab's and YOLOv5's spellings."""
from __future__ import annotations

import argparse


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--work-dir``, ``--cfg-options``, ``--launcher``, ``--local-rank``."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (e.g. train_cfg.max_epochs=3)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (dist_*.sh set pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_distill_args(parser: argparse.ArgumentParser) -> None:
    """The options of the YOLOv5 distillation scripts, and the data and size options."""
    from .unlabeled import DEFAULT_UNLABELED_AUG, DEFAULT_UNLABELED_WEIGHT, UNLABELED_AUGS
    parser.add_argument('--t-weights', metavar='PATH',
                        help="teacher weights (sets the config's model.teacher_ckpt): "
                        'an mmyolo checkpoint or an Ultralytics YOLOv5 .pt')
    parser.add_argument('--t-cfg', metavar='CONFIG',
                        help='teacher config file; its model replaces model.teacher')
    parser.add_argument('--weights', metavar='PATH',
                        help="the student's starting weights (Ultralytics .pt, mmyolo or "
                        'distillation checkpoint); also for plain configs')
    parser.add_argument('--data', metavar='DATA_YAML',
                        help='Ultralytics data.yaml: train/val sets and class count of '
                        'student and teacher')
    parser.add_argument('--epochs', type=int, metavar='N',
                        help='train for N epochs, with everything that counts in epochs '
                        'fitted: the learning-rate decay, the warm-up cap, the distillation '
                        'stop, validation and checkpoint intervals (Ultralytics\' epochs=)')
    parser.add_argument('--img-size', type=int, metavar='N',
                        help='train and evaluate at N px (pipelines and loss weights)')
    parser.add_argument('--t-precision', choices=['auto', 'fp32', 'bf16', 'fp16', 'ort'],
                        help='what runs the teacher forward (model.teacher_precision; '
                        'default auto: bf16 on CPUs with AMX/AVX512-BF16, ort (onnxruntime, '
                        'float32) on other CPUs, fp16/bf16 on CUDA)')
    parser.add_argument('--unlabeled', action='append', metavar='PATH',
                        help='images without labels to distil on (a folder, a glob, a .txt '
                        'list; repeatable): each batch mixes them with labeled images, the '
                        'detection loss sees only the labeled ones')
    parser.add_argument('--unlabeled-ratio', type=float, metavar='R',
                        help='share of each batch taken by unlabeled images (default 0.5)')
    parser.add_argument('--unlabeled-weight', type=float, metavar='W',
                        help="weight of an unlabeled image in the output-distillation loss, "
                        f"a labeled one's being 1 (> 0; default {DEFAULT_UNLABELED_WEIGHT:g}, "
                        '1 for a distiller without an output-distillation loss)')
    parser.add_argument('--unlabeled-aug', choices=sorted(UNLABELED_AUGS),
                        help="the student's view of the unlabeled images: strong "
                        '(photometric: colour, blur, noise, cutout; the teacher sees them '
                        f'as loaded) or none (default {DEFAULT_UNLABELED_AUG})')
    parser.add_argument('--unlabeled-pseudo-labels', type=float, metavar='SCORE',
                        help="give the unlabeled images the detection loss too, against the "
                        "teacher's boxes scoring above SCORE (in (0, 1), e.g. 0.5); "
                        'default: off, distillation only')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--d-output', action='store_true',
                      help='distill the head outputs only (drops feature parts)')
    mode.add_argument('--d-feature', action='store_true',
                      help='distill the head outputs and the neck features '
                      '(the config\'s feature loss, connectors where widths differ)')
