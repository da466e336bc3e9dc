# Output distillation, YOLOv5-n teacher -> YOLOv5-n student (self-distillation), CPU scale:
# the s -> n config with another teacher.
_base_ = './kd-out_yolov5_s-to-n-v61_fast_1xb16-40e_shapes-160.py'

model = dict(
    teacher=dict(cfg_path='{{fileDirname}}/../../yolov5/yolov5_n-v61_fast_1xb16-40e_shapes-160.py'))
