from .synthetic import CLASSES as SHAPES_CLASSES
from .synthetic import make_shapes_dataset
from .yolo_data import coco_json_for, load_data_yaml, yolo_split_to_coco

__all__ = ['SHAPES_CLASSES', 'make_shapes_dataset', 'coco_json_for', 'load_data_yaml',
           'yolo_split_to_coco']
