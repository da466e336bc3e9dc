# Output distillation, YOLOv5-s teacher -> YOLOv5-n student, generated shapes at 160 px, 40 epochs (CPU scale).
_base_ = [
    '../../yolov5/yolov5_n-v61_fast_1xb16-40e_shapes-160.py',
    '../../_base_/distill/yolov5_kd.py'
]

model = dict(
    _delete_=True,
    _scope_='mmkd_yolo',
    type='YOLOv5Distill',
    architecture=_base_.model,
    teacher=dict(cfg_path='{{fileDirname}}/../../yolov5/yolov5_s-v61_fast_1xb16-40e_shapes-160.py'),
    teacher_ckpt=None,  # the teacher's weights: set it, or pass --t-weights
    distiller=_base_.kd_out_distiller)

optim_wrapper = dict(constructor=_base_.kd_optim_constructor)
model_wrapper_cfg = _base_.kd_model_wrapper_cfg
# mmyolo's EMA of the student alone; the last epochs train on the task loss alone, as
# mmyolo's RTMDet distillation does: a sixth of the run, at most 5 epochs (5 of 30 or 40,
# the schedule the demo's gains were measured with; 2 of 10, none of a 1-epoch run)
custom_hooks = [
    _base_.kd_student_ema_hook,
    dict(type='mmkd_yolo.StopDistillLastEpochsHook', num_last_epochs=5, last_fraction=1 / 6)
]
