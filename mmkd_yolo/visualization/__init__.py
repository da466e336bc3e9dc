from .curves import plot_curves
from .draw import PALETTE, draw_boxes, draw_detections
from .outputs import drawn_image_paths, new_output_dir

__all__ = ['PALETTE', 'draw_boxes', 'draw_detections', 'drawn_image_paths', 'new_output_dir',
           'plot_curves']
