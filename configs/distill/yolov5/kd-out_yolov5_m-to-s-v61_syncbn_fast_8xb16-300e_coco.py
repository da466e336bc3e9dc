# Output distillation, YOLOv5-m teacher -> YOLOv5-s student, mmyolo's 8xb16 300-epoch
# COCO schedule: the l -> s config with another teacher.
_base_ = './kd-out_yolov5_l-to-s-v61_syncbn_fast_8xb16-300e_coco.py'

model = dict(teacher=dict(cfg_path='mmyolo::yolov5/yolov5_m-v61_syncbn_fast_8xb16-300e_coco.py'))
