# Output + feature (ChannelWiseDivergence on the neck outputs) distillation,
# YOLOv5-x -> YOLOv5-l; student widths (256, 512, 1024) -> teacher (320, 640, 1280) by 1x1 connectors.
_base_ = './kd-out_yolov5_x-to-l-v61_syncbn_fast_8xb16-300e_coco.py'

model = dict(
    distiller=dict(
        student_recorders=_base_.kd_neck_recorders,
        teacher_recorders=_base_.kd_neck_recorders,
        connectors=dict(
            neck0_s=dict(_base_.kd_connector, in_channel=256, out_channel=320),
            neck1_s=dict(_base_.kd_connector, in_channel=512, out_channel=640),
            neck2_s=dict(_base_.kd_connector, in_channel=1024, out_channel=1280),
        ),
        distill_losses=_base_.kd_cwd_losses,
        loss_forward_mappings=_base_.kd_cwd_mappings_connected))
