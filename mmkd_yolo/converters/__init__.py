from .detector_weights import (POLICIES, DetectorWeights, FitReport, detector_checkpoint_file,
                               fit_detector_weights, read_detector_weights)
from .kd_to_student import extract_student
from .yolov5_to_mmyolo import (convert_yolov5_checkpoint, is_ultralytics_checkpoint,
                               load_or_convert)

__all__ = ['POLICIES', 'DetectorWeights', 'FitReport', 'detector_checkpoint_file',
           'fit_detector_weights', 'read_detector_weights', 'extract_student',
           'convert_yolov5_checkpoint', 'is_ultralytics_checkpoint', 'load_or_convert']
