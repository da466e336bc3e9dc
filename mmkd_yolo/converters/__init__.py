from .restricted_unpickler import RestrictedUnpickler, restricted_load
from .yolov5_to_mmyolo import (convert_yolov5_checkpoint, is_ultralytics_checkpoint,
                               load_or_convert)

__all__ = ['RestrictedUnpickler', 'restricted_load', 'convert_yolov5_checkpoint',
           'is_ultralytics_checkpoint', 'load_or_convert']
