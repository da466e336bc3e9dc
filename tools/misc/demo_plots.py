"""The demo's curves: the students' val mAP and losses per epoch (its detections picture is
the comparison's, :func:`mmkd_yolo.analysis.compare_checkpoints`)."""
from __future__ import annotations

from typing import Sequence, Tuple

from train_runs import loss_history, val_history


def plot_curves(runs: Sequence[Tuple[str, str]], out: str) -> None:
    """Val mAP and the detection losses per epoch of each run, in two panels.

    Args:
        runs (list[tuple]): (legend name, work dir of a ``tools/train.py`` run).
        out (str): The image file to write.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax_map, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name, work_dir in runs:
        hist = val_history(work_dir)
        ax_map.plot([h['epoch'] for h in hist], [h['mAP'] for h in hist], marker='o',
                    label=name)
        colour = ax_map.lines[-1].get_color()
        for part, style in (('bbox', '-'), ('obj', '--'), ('cls', ':')):
            # the distilled run logs its detection losses as student.loss_*
            losses = loss_history(work_dir, f'student.loss_{part}') or \
                loss_history(work_dir, f'loss_{part}')
            ax_loss.plot(list(losses), list(losses.values()), style, color=colour,
                         label=f'{name}: loss_{part}')
    ax_map.set(xlabel='epoch', ylabel='val mAP@.5:.95', title='students: val mAP')
    ax_loss.set(xlabel='epoch', ylabel='mean per epoch',
                title='students: detection losses (distillation parts not included)')
    for ax in (ax_map, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
