from .yolov5_mse_output_distill_loss import YOLOv5MSEOutputDistillLoss
from .yolov5_output_distill_loss import YOLOv5OutputDistillLoss

__all__ = ['YOLOv5MSEOutputDistillLoss', 'YOLOv5OutputDistillLoss']
