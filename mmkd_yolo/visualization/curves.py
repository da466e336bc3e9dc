"""A run's curves in one PNG: losses, distillation losses, learning rate, val mAP."""
from __future__ import annotations

import io
from typing import Dict, List, Tuple

#: name -> (x, y) points, x in epochs (or iterations)
Series = Dict[str, Tuple[List[float], List[float]]]


def is_distill_loss(name: str) -> bool:
    return name.startswith('distill.')


def is_loss(name: str) -> bool:
    return name == 'loss' or name.split('.')[-1].startswith('loss_')


def is_lr(name: str) -> bool:
    return name == 'lr' or name.endswith('.lr')


def plot_curves(series: Series, x_label: str = 'epoch', title: str = '') -> bytes:
    """The PNG bytes of one row of panels: the total loss and the detection parts
    (``student.loss_*`` or plain ``loss_*``), the distillation parts (``distill.*``, only
    when there are any), the learning rate, and the remaining series (val mAP).

    Drawn on matplotlib's Agg canvas directly, without pyplot: no global backend switch,
    no figure left open in the training process.

    Args:
        series (dict): ``name -> (x, y)``.
        x_label (str): The unit of x.
        title (str): Over the figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [('losses', [k for k in series if is_loss(k) and not is_distill_loss(k)]),
              ('distillation losses', [k for k in series if is_distill_loss(k)]),
              ('learning rate', [k for k in series if is_lr(k)]),
              ('val mAP', [k for k in series if not is_loss(k) and not is_lr(k)])]
    panels = [p for p in panels if p[1] or p[0] != 'distillation losses']
    fig = Figure(figsize=(4.2 * len(panels), 3.6))
    FigureCanvasAgg(fig)
    for i, (name, keys) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key in keys:
            xs, ys = series[key]
            few = name == 'val mAP' or len(xs) < 40  # a single point has no line
            ax.plot(xs, ys, marker='o' if few else None, markersize=3, linewidth=1.2,
                    label=key)
        if not keys:
            ax.text(0.5, 0.5, 'none logged yet', ha='center', va='center',
                    transform=ax.transAxes, color='grey')
        ax.set(title=name, xlabel=x_label)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=90)
    return buffer.getvalue()
