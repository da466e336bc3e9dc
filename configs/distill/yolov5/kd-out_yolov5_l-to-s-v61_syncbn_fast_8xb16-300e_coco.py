# Output distillation, YOLOv5-l teacher -> YOLOv5-s student, mmyolo's 8xb16 300-epoch COCO schedule.
_base_ = [
    'mmyolo::yolov5/yolov5_s-v61_syncbn_fast_8xb16-300e_coco.py',
    '../../_base_/distill/yolov5_kd.py'
]

model = dict(
    _delete_=True,
    _scope_='mmkd_yolo',
    type='YOLOv5Distill',
    architecture=_base_.model,
    teacher=dict(cfg_path='mmyolo::yolov5/yolov5_l-v61_syncbn_fast_8xb16-300e_coco.py'),
    teacher_ckpt=None,  # the teacher's weights: set it, or pass --t-weights
    distiller=_base_.kd_out_distiller)

# Inheriting across packages ('mmyolo::') tags every dict with a type by _scope_, and
# the Runner passes collate_fn's keys to the function: restate it without the tag.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='yolov5_collate'))
optim_wrapper = dict(constructor=_base_.kd_optim_constructor)
model_wrapper_cfg = _base_.kd_model_wrapper_cfg
# mmyolo's EMA of the student alone; the last epochs train on the task loss alone, as
# mmyolo's RTMDet distillation does: 20 of 300, scaled to shorter runs (the last 1/15:
# 2 of a 30-epoch fine-tune, none of a 7-epoch one)
custom_hooks = [
    _base_.kd_student_ema_hook,
    dict(type='mmkd_yolo.StopDistillLastEpochsHook', num_last_epochs=20)
]
