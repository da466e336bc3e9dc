# Output + feature (ChannelWiseDivergence on the neck outputs) distillation,
# YOLOv5-s -> YOLOv5-n; student widths (64, 128, 256) -> teacher (128, 256, 512) by 1x1 connectors.
_base_ = './kd-out_yolov5_s-to-n-v61_fast_1xb16-40e_shapes-160.py'

model = dict(
    distiller=dict(
        student_recorders=_base_.kd_neck_recorders,
        teacher_recorders=_base_.kd_neck_recorders,
        connectors=dict(
            neck0_s=dict(_base_.kd_connector, in_channel=64, out_channel=128),
            neck1_s=dict(_base_.kd_connector, in_channel=128, out_channel=256),
            neck2_s=dict(_base_.kd_connector, in_channel=256, out_channel=512),
        ),
        distill_losses=_base_.kd_cwd_losses,
        loss_forward_mappings=_base_.kd_cwd_mappings_connected))
