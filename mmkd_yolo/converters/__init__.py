from .detector_weights import (POLICIES, DetectorWeights, FitReport, anchor_mismatch,
                               detector_checkpoint_file, fit_detector, fit_detector_weights,
                               read_detector_weights, short_list, yolov5_width_error)
from .kd_to_student import extract_student
from .yolov5_to_mmyolo import (convert_yolov5_checkpoint, is_ultralytics_checkpoint,
                               load_or_convert)

__all__ = ['POLICIES', 'DetectorWeights', 'FitReport', 'anchor_mismatch',
           'detector_checkpoint_file', 'fit_detector', 'fit_detector_weights',
           'read_detector_weights',
           'short_list', 'yolov5_width_error', 'extract_student',
           'convert_yolov5_checkpoint', 'is_ultralytics_checkpoint', 'load_or_convert']
