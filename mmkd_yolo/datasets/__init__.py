from .labeled_epoch_sampler import LabeledEpochSampler, split_batch
from .synthetic import CLASSES as SHAPES_CLASSES
from .synthetic import make_shapes_dataset
from .unlabeled_collate import yolov5_unlabeled_collate
from .unlabeled_images import count_overlap, list_unlabeled_images, unlabeled_coco_json
from .yolo_data import coco_json_for, load_data_yaml, yolo_split_to_coco
from .yolov5_unlabeled_dataset import YOLOv5UnlabeledDataset

__all__ = ['LabeledEpochSampler', 'split_batch', 'SHAPES_CLASSES', 'make_shapes_dataset',
           'yolov5_unlabeled_collate', 'count_overlap', 'list_unlabeled_images',
           'unlabeled_coco_json', 'coco_json_for', 'load_data_yaml', 'yolo_split_to_coco',
           'YOLOv5UnlabeledDataset']
