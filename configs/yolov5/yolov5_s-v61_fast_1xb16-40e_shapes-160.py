# YOLOv5-s on the generated shapes dataset (mmkd_yolo.datasets.make_shapes_dataset), 160 px,
# 40 epochs, one CPU or GPU: the CPU-scale base of the demo and of the cpu distill configs.
_base_ = 'mmyolo::yolov5/yolov5_s-v61_syncbn_fast_8xb16-300e_coco.py'

data_root = 'data/shapes/'
class_name = ('square', 'circle', 'triangle', 'diamond', 'ring', 'cross', 'star', 'hexagon')
num_classes = len(class_name)
metainfo = dict(classes=class_name)
img_scale = (160, 160)  # width, height
max_epochs = 40
train_batch_size_per_gpu = 16
train_num_workers = 2
val_interval = 10
# mmyolo's schedule warms up for max(3 epochs, 1000 iterations): far too long here
warmup_mim_iter = 50

# The base computes these from num_classes and img_scale when it is parsed, so they
# are restated for this dataset (mmyolo's formulas).
loss_cls_weight = _base_.loss_cls_weight * (num_classes / 80 * 3 / _base_.num_det_layers)
loss_obj_weight = _base_.loss_obj_weight * ((img_scale[0] / 640)**2 * 3 / _base_.num_det_layers)
model = dict(
    bbox_head=dict(
        head_module=dict(num_classes=num_classes),
        loss_cls=dict(loss_weight=loss_cls_weight),
        loss_obj=dict(loss_weight=loss_obj_weight)))

pre_transform = _base_.pre_transform
# Pipelines carry the image size themselves; mmdet.Albu is dropped (needs albumentations).
train_pipeline = [
    *pre_transform,
    dict(type='Mosaic', img_scale=img_scale, pad_val=114.0, pre_transform=pre_transform),
    dict(
        type='YOLOv5RandomAffine',
        max_rotate_degree=0.0,
        max_shear_degree=0.0,
        scaling_ratio_range=(1 - _base_.affine_scale, 1 + _base_.affine_scale),
        border=(-img_scale[0] // 2, -img_scale[1] // 2),
        border_val=(114, 114, 114)),
    dict(type='YOLOv5HSVRandomAug'),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(
        type='mmdet.PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'flip', 'flip_direction'))
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='YOLOv5KeepRatioResize', scale=img_scale),
    dict(type='LetterResize', scale=img_scale, allow_scale_up=False, pad_val=dict(img=114)),
    dict(type='LoadAnnotations', with_bbox=True, _scope_='mmdet'),
    dict(
        type='mmdet.PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                   'pad_param'))
]

# Inheriting across packages ('mmyolo::') tags every dict with a type by _scope_, and
# the Runner passes collate_fn's keys to the function: restated without the tag.
train_dataloader = dict(
    collate_fn=dict(_delete_=True, type='yolov5_collate'),
    batch_size=train_batch_size_per_gpu,
    num_workers=train_num_workers,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=train_num_workers,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline,
        batch_shapes_cfg=None))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(batch_size_per_gpu=train_batch_size_per_gpu))
default_hooks = dict(
    param_scheduler=dict(max_epochs=max_epochs, warmup_mim_iter=warmup_mim_iter),
    checkpoint=dict(interval=val_interval, max_keep_ckpts=2),
    logger=dict(interval=10))
train_cfg = dict(max_epochs=max_epochs, val_interval=val_interval)
