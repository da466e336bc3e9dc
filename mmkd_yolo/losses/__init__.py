from .yolov5_output_distill_loss import YOLOv5OutputDistillLoss

__all__ = ['YOLOv5OutputDistillLoss']
