"""The demo's pictures: detections side by side, and the students' curves per epoch."""
from __future__ import annotations

from typing import List, Sequence, Tuple

from train_runs import loss_history, val_history

#: A ground-truth box: ([x1, y1, x2, y2], class index).
GtBox = Tuple[List[float], int]


def draw_grid(models: Sequence[Tuple[str, object]], images: Sequence[Tuple[str, List[GtBox]]],
              classes: Sequence[str], out: str, score_thr: float = 0.3) -> None:
    """Rows: val images; columns: ground truth, then each model's detections.

    Args:
        models (list[tuple]): (column title, detector of
            :func:`~mmkd_yolo.apis.detector.load_detector`).
        images (list[tuple]): (image file, its ground-truth boxes).
        classes (list[str]): Class names, by class index.
        out (str): The image file to write.
        score_thr (float): Detections scored below are not drawn.
    """
    import cv2
    import numpy as np

    from mmkd_yolo.apis.inference import detect
    from mmkd_yolo.visualization import draw_boxes
    scale = 3
    rows = []
    for path, gt in images:
        img = cv2.imread(path)
        big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        columns = [('ground truth', [(b, c, None) for b, c in gt])]
        for name, model in models:
            _, pred = next(detect(model, [path]))
            keep = pred.scores >= score_thr
            columns.append((name, [(b.tolist(), int(c), float(s)) for b, c, s in zip(
                pred.bboxes[keep], pred.labels[keep], pred.scores[keep])]))
        panels = []
        for title, boxes in columns:
            panel = draw_boxes(big, boxes, classes, scale=scale)
            header = np.full((28, panel.shape[1], 3), 255, np.uint8)
            cv2.putText(header, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
            panels.append(np.vstack([header, panel]))
        rows.append(np.hstack([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=255)
                               for p in panels]))
    cv2.imwrite(out, np.vstack(rows))


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
