from .curves import plot_curves
from .draw import PALETTE, draw_boxes, draw_detections

__all__ = ['PALETTE', 'draw_boxes', 'draw_detections', 'plot_curves']
