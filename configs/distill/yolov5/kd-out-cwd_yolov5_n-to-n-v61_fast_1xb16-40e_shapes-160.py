# Output + feature (ChannelWiseDivergence on the neck outputs) distillation,
# YOLOv5-n -> YOLOv5-n; same widths: no connectors.
_base_ = './kd-out_yolov5_n-to-n-v61_fast_1xb16-40e_shapes-160.py'

model = dict(
    distiller=dict(
        student_recorders=_base_.kd_neck_recorders,
        teacher_recorders=_base_.kd_neck_recorders,
        distill_losses=_base_.kd_cwd_losses,
        loss_forward_mappings=_base_.kd_cwd_mappings))
