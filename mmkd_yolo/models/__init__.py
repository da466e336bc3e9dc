from .distributed_data_parallel import DistillDistributedDataParallel
from .unlabeled_photometric_aug import UnlabeledPhotometricAug
from .yolov5_unlabeled_data_preprocessor import YOLOv5UnlabeledDataPreprocessor

__all__ = [
    'DistillDistributedDataParallel', 'UnlabeledPhotometricAug',
    'YOLOv5UnlabeledDataPreprocessor'
]
