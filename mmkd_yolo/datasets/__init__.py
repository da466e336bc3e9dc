from .synthetic import CLASSES as SHAPES_CLASSES
from .synthetic import make_shapes_dataset
from .yolo_data import apply_data_yaml, load_data_yaml, yolo_split_to_coco

__all__ = ['SHAPES_CLASSES', 'make_shapes_dataset', 'apply_data_yaml', 'load_data_yaml',
           'yolo_split_to_coco']
