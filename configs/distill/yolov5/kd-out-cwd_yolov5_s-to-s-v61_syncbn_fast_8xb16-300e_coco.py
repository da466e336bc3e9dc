# Output + feature (ChannelWiseDivergence on the neck outputs) distillation,
# YOLOv5-s -> YOLOv5-s; same widths: no connectors.
_base_ = './kd-out_yolov5_s-to-s-v61_syncbn_fast_8xb16-300e_coco.py'

model = dict(
    distiller=dict(
        student_recorders=_base_.kd_neck_recorders,
        teacher_recorders=_base_.kd_neck_recorders,
        distill_losses=_base_.kd_cwd_losses,
        loss_forward_mappings=_base_.kd_cwd_mappings))
