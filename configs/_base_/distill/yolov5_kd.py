# Pieces of YOLOv5 distillation, combined by the configs in configs/distill/yolov5/.
# Only new names here (prefixed kd_), so this file can sit beside an mmyolo config
# in a `_base_` list.
custom_imports = dict(imports=['mmkd_yolo'], allow_failed_imports=False)

# Output distillation: the raw head predictions (cls, bbox, obj of the three levels),
# recorded at mmyolo's YOLOv5HeadModule output.
kd_out_distiller = dict(
    type='ConfigurableDistiller',
    student_recorders=dict(preds=dict(type='ModuleOutputs', source='bbox_head.head_module')),
    teacher_recorders=dict(preds=dict(type='ModuleOutputs', source='bbox_head.head_module')),
    distill_losses=dict(loss_out=dict(type='YOLOv5OutputDistillLoss', loss_weight=1.0)),
    loss_forward_mappings=dict(
        loss_out=dict(
            s_preds=dict(from_student=True, recorder='preds'),
            t_preds=dict(from_student=False, recorder='preds'))))

# Feature distillation: the three neck outputs (strides 8, 16, 32).
kd_neck_recorders = dict(
    neck0=dict(type='ModuleOutputs', source='neck.out_layers.0'),
    neck1=dict(type='ModuleOutputs', source='neck.out_layers.1'),
    neck2=dict(type='ModuleOutputs', source='neck.out_layers.2'))
kd_cwd_weight = 1.0
kd_cwd_losses = dict(
    loss_cwd0=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=kd_cwd_weight),
    loss_cwd1=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=kd_cwd_weight),
    loss_cwd2=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=kd_cwd_weight))
# The plain alternative of the YOLOv5 distillation scripts (f_weight=0.1): mean squared
# error. Swap `distill_losses` to kd_mse_losses and rename the mappings' keys.
kd_mse_losses = dict(
    loss_mse0=dict(type='L2Loss', normalize=False, div_element=True, loss_weight=0.1),
    loss_mse1=dict(type='L2Loss', normalize=False, div_element=True, loss_weight=0.1),
    loss_mse2=dict(type='L2Loss', normalize=False, div_element=True, loss_weight=0.1))

# Loss inputs: student neck output i (through connector neck{i}_s where the widths
# differ) against the teacher's.
kd_cwd_mappings = {
    f'loss_cwd{i}': dict(
        preds_S=dict(from_student=True, recorder=f'neck{i}'),
        preds_T=dict(from_student=False, recorder=f'neck{i}'))
    for i in range(3)
}
kd_cwd_mappings_connected = {
    f'loss_cwd{i}': dict(
        preds_S=dict(from_student=True, recorder=f'neck{i}', connector=f'neck{i}_s'),
        preds_T=dict(from_student=False, recorder=f'neck{i}'))
    for i in range(3)
}
kd_mse_mappings_connected = {
    f'loss_mse{i}': dict(
        s_feature=dict(from_student=True, recorder=f'neck{i}', connector=f'neck{i}_s'),
        t_feature=dict(from_student=False, recorder=f'neck{i}'))
    for i in range(3)
}

# Student width -> teacher width: a trained 1x1 conv (no norm: mmyolo's optimizer
# constructor expects every norm layer to have a weight).
kd_connector = dict(type='ConvModuleConnector', kernel_size=1, norm_cfg=None, act_cfg=None)

# mmyolo's YOLOv5 EMA (EMAHook, ExpMomentumEMA), over the student only: EMAHook would copy
# and average the frozen teacher as well.
kd_student_ema_hook = dict(
    type='mmkd_yolo.StudentEMAHook',
    ema_type='ExpMomentumEMA',
    momentum=0.0001,
    update_buffers=True,
    strict_load=False,
    priority=49)

kd_optim_constructor = 'mmkd_yolo.YOLOv5DistillOptimizerConstructor'
# mmengine's DDP wrapper, also for CPU (gloo) runs
kd_model_wrapper_cfg = dict(type='mmkd_yolo.DistillDistributedDataParallel')
