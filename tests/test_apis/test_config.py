"""Config loading, the distillation switches and teacher config handling."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmkd_yolo.apis import (apply_distill_switches, apply_teacher_args, load_config,
                            prepare_train_cfg)
from mmkd_yolo.errors import ConfigError
from mmkd_yolo.models.detector_cfg import load_detector_cfg, neck_widths

from ..conftest import CONFIGS, KD_CWD_S2N, KD_OUT_S2N, STUDENT_N, TEACHER_S


def feature_parts(cfg):
    d = cfg.model.distiller
    return ({k: v.source for k, v in d.student_recorders.items()}, dict(d.get('connectors', {})),
            set(d.distill_losses), set(d.loss_forward_mappings))


def test_d_feature_adds_cwd_with_connectors_for_other_widths():
    cfg = load_config(KD_OUT_S2N)
    apply_distill_switches(cfg, d_feature=True)
    recorders, connectors, losses, mappings = feature_parts(cfg)
    assert recorders == {'preds': 'bbox_head.head_module', 'neck0': 'neck.out_layers.0',
                         'neck1': 'neck.out_layers.1', 'neck2': 'neck.out_layers.2'}
    assert [(c.in_channel, c.out_channel) for c in connectors.values()] == \
        [(64, 128), (128, 256), (256, 512)]
    assert losses == mappings == {'loss_out', 'loss_cwd0', 'loss_cwd1', 'loss_cwd2'}
    # the same as the shipped feature config
    shipped = Config.fromfile(KD_CWD_S2N)
    assert feature_parts(shipped)[0] == recorders
    assert [(c.in_channel, c.out_channel) for c in feature_parts(shipped)[1].values()] == \
        [(64, 128), (128, 256), (256, 512)]


def test_d_feature_same_widths_needs_no_connector():
    cfg = load_config(KD_OUT_S2N.replace('s-to-n', 'n-to-n'))
    apply_distill_switches(cfg, d_feature=True)
    _, connectors, losses, _ = feature_parts(cfg)
    assert connectors == {} and 'loss_cwd2' in losses
    mapping = cfg.model.distiller.loss_forward_mappings.loss_cwd0
    assert 'connector' not in mapping.preds_S


def test_d_output_removes_feature_parts():
    cfg = load_config(KD_CWD_S2N)
    apply_distill_switches(cfg, d_output=True)
    recorders, connectors, losses, mappings = feature_parts(cfg)
    assert recorders == {'preds': 'bbox_head.head_module'}
    assert connectors == {} and losses == mappings == {'loss_out'}


def test_switches_exclude_each_other_and_need_a_distill_config():
    with pytest.raises(ConfigError, match='exclude each other'):
        apply_distill_switches(load_config(KD_OUT_S2N), d_output=True, d_feature=True)
    with pytest.raises(ConfigError, match='need a distillation config'):
        apply_distill_switches(load_config(STUDENT_N), d_feature=True)


def test_d_feature_takes_the_recipe_from_the_base_config():
    """--d-feature adds what configs/_base_/distill/yolov5_kd.py defines, not a copy."""
    cfg = load_config(KD_OUT_S2N, cfg_options={'kd_cwd_losses.loss_cwd1.tau': 3.0})
    apply_distill_switches(cfg, d_feature=True)
    assert cfg.model.distiller.distill_losses.loss_cwd1.tau == 3.0
    fresh = load_config(KD_OUT_S2N)
    fresh.pop('kd_cwd_losses')
    with pytest.raises(ConfigError, match="lacks \\['kd_cwd_losses'\\]"):
        apply_distill_switches(fresh, d_feature=True)


def test_detector_configs_read_once_at_load():
    cfg = load_config(KD_OUT_S2N)
    assert 'cfg_path' not in cfg.model.teacher and cfg.model.teacher.type == 'YOLODetector'
    assert cfg.model.teacher.backbone.widen_factor == 0.5


def test_t_cfg_and_t_weights(tmp_path):
    cfg = Config.fromfile(KD_OUT_S2N)
    apply_teacher_args(cfg, t_cfg=STUDENT_N)
    assert cfg.model.teacher.backbone.widen_factor == 0.25
    assert cfg.model.teacher._scope_ == 'mmyolo'
    with pytest.raises(ConfigError, match='do not exist'):
        apply_teacher_args(cfg, t_weights=str(tmp_path / 'missing.pth'))
    weights = tmp_path / 'w.pth'
    weights.write_bytes(b'x')
    apply_teacher_args(cfg, t_weights=str(weights))
    assert cfg.model.teacher_ckpt == str(weights)
    with pytest.raises(ConfigError, match='distillation config'):
        apply_teacher_args(Config.fromfile(STUDENT_N), t_weights=str(weights))
    apply_teacher_args(cfg, t_precision='fp32')
    assert cfg.model.teacher_precision == 'fp32'
    with pytest.raises(ConfigError, match='distillation config'):
        apply_teacher_args(Config.fromfile(STUDENT_N), t_precision='bf16')


def test_prepare_train_cfg_work_dir_and_resume(tmp_path):
    cfg = prepare_train_cfg(KD_OUT_S2N, amp=True)
    assert cfg.work_dir.endswith(osp.splitext(osp.basename(KD_OUT_S2N))[0])
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.default_hooks.checkpoint.backend_args == dict(backend='atomic_local')
    # --resume with nothing to resume from starts anew instead of failing
    cfg = prepare_train_cfg(KD_OUT_S2N, resume='auto', cfg_options={'work_dir': str(tmp_path)})
    assert cfg.resume is False and cfg.load_from is None
    with pytest.raises(ConfigError, match='no such checkpoint'):
        prepare_train_cfg(KD_OUT_S2N, resume=str(tmp_path / 'nope.pth'))
    with pytest.raises(ConfigError, match='does not exist'):
        prepare_train_cfg(str(tmp_path / 'nope.py'))


def test_neck_widths():
    assert neck_widths(load_detector_cfg(STUDENT_N)) == [64, 128, 256]
    assert neck_widths(load_detector_cfg(TEACHER_S)) == [128, 256, 512]
    x = load_detector_cfg('mmyolo::yolov5/yolov5_x-v61_syncbn_fast_8xb16-300e_coco.py')
    assert neck_widths(x) == [320, 640, 1280]


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(CONFIGS, 'distill', 'yolov5', '*.py'))),
                         ids=osp.basename)
def test_every_shipped_config_builds(path):
    """Each distillation config parses, and its student, teacher and distiller build."""
    from mmkd_yolo.registry import MODELS
    cfg = Config.fromfile(path)
    name = osp.basename(path)
    method, pair = name.split('_yolov5_')[0], name.split('_yolov5_')[1].split('-v61')[0]
    teacher, student = pair.split('-to-')
    assert cfg.model.type == 'YOLOv5Distill'
    assert cfg.train_dataloader.collate_fn == dict(type='yolov5_collate')
    # on the meta device: the modules and their shapes without the random initialisation
    # of up to 130M parameters (most of the build time of the COCO l/x pairs)
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    widths = {'n': 0.25, 's': 0.5, 'm': 0.75, 'l': 1.0, 'x': 1.25}
    assert model.student.backbone.widen_factor == widths[student]
    assert model.teacher.backbone.widen_factor == widths[teacher]
    has_cwd = any(k.startswith('loss_cwd') for k in model.distiller.distill_losses)
    assert has_cwd == (method == 'kd-out-cwd')
    assert len(model.distiller.connectors) == (3 if has_cwd and teacher != student else 0)


def test_img_size_sets_pipelines_and_objectness_weight():
    from mmkd_yolo.apis import set_img_size
    cfg = load_config(KD_OUT_S2N)
    obj = cfg.model.architecture.bbox_head.loss_obj.loss_weight
    set_img_size(cfg, 320)
    pipeline = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    assert pipeline['Mosaic']['img_scale'] == (320, 320)
    assert pipeline['YOLOv5RandomAffine']['border'] == (-160, -160)
    test_pipeline = {t['type']: t for t in cfg.val_dataloader.dataset.pipeline}
    assert test_pipeline['YOLOv5KeepRatioResize']['scale'] == (320, 320)
    assert test_pipeline['LetterResize']['scale'] == (320, 320)
    # mmyolo: loss_obj weight grows with (img_size / 640) ** 2; 160 -> 320 is x4
    assert cfg.model.architecture.bbox_head.loss_obj.loss_weight == pytest.approx(4 * obj)
    with pytest.raises(ConfigError, match='multiple of 32'):
        set_img_size(cfg, 100)


def test_img_size_reaches_nested_mosaic_and_batch_shapes():
    """mmyolo's l/x recipe: Mosaic inside MixUp's pre_transform; rectangular val batches."""
    from mmkd_yolo.apis import set_img_size
    cfg = load_config('mmyolo::yolov5/yolov5_l-v61_syncbn_fast_8xb16-300e_coco.py')
    set_img_size(cfg, 320)
    mixup = next(t for t in cfg.train_dataloader.dataset.pipeline if 'MixUp' in t['type'])
    mosaic = next(t for t in mixup['pre_transform'] if t['type'] == 'Mosaic')
    assert mosaic['img_scale'] == (320, 320)
    assert cfg.val_dataloader.dataset.batch_shapes_cfg.img_size == 320


def test_test_img_scale_only_touches_evaluation():
    from mmkd_yolo.apis import set_test_img_scale
    cfg = load_config('mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py')
    set_test_img_scale(cfg, 320)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        resize = next(t for t in loader.dataset.pipeline if t['type'] == 'LetterResize')
        assert resize['scale'] == (320, 320)
        assert loader.dataset.batch_shapes_cfg.img_size == 320
    mosaic = next(t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'Mosaic')
    assert mosaic['img_scale'] == (640, 640)


@pytest.mark.slow  # six models built and initialised from checkpoints
def test_weights_initialise_the_student(tmp_path):
    """--weights: the student starts from the checkpoint (plain and distillation configs,
    and a distillation checkpoint's student); the teacher is untouched."""
    import torch

    from mmkd_yolo.registry import MODELS
    donor = MODELS.build(load_detector_cfg(STUDENT_N))
    for p in donor.parameters():
        p.data.fill_(0.125)
    path = tmp_path / 'student.pth'
    torch.save({'state_dict': donor.state_dict()}, path)
    kd_path = tmp_path / 'kd.pth'
    torch.save({'state_dict': {f'architecture.{k}': v for k, v in donor.state_dict().items()}},
               kd_path)
    for config, weights in ((STUDENT_N, path), (KD_OUT_S2N, path), (KD_OUT_S2N, kd_path)):
        cfg = prepare_train_cfg(config, weights=str(weights))
        model = MODELS.build(cfg.model)
        model.init_weights()
        student = model.student if hasattr(model, 'student') else model
        conv = student.backbone.stem.conv.weight
        assert torch.all(conv == 0.125), (config, weights)
    with pytest.raises(ConfigError, match='do not exist'):
        prepare_train_cfg(STUDENT_N, weights=str(tmp_path / 'missing.pth'))


def test_prepare_has_no_distributed_side_effect():
    import torch.distributed as dist
    cfg = prepare_train_cfg(KD_OUT_S2N, launcher='pytorch')
    assert not dist.is_initialized()
    assert cfg.launcher == 'pytorch'


def test_runner_type_honoured(tmp_path):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmkd_yolo.apis import build_runner

    built = []

    @RUNNERS.register_module(force=True)
    class _RecordingRunner(Runner):
        @classmethod
        def from_cfg(cls, cfg):
            built.append(cfg.work_dir)
            return 'runner'

    cfg = prepare_train_cfg(STUDENT_N, work_dir=str(tmp_path),
                            cfg_options={'runner_type': '_RecordingRunner'})
    assert build_runner(cfg) == 'runner' and built == [str(tmp_path)]


@pytest.mark.parametrize('path', sorted(p for p in glob.glob(osp.join(CONFIGS, '**', '*.py'),
                                                            recursive=True)
                                         if '_base_' not in p),
                         ids=lambda p: osp.relpath(p, CONFIGS))
def test_every_shipped_config_pulls_a_training_batch(path, shapes_dir):
    """Each config's own training pipeline (mmyolo's COCO recipe with mmdet.Albu, Mosaic,
    MixUp...) yields a batch from tiny data."""
    from mmengine.runner import Runner

    from mmkd_yolo.apis.config import inner_dataset
    root = str(shapes_dir / 'data' / 'shapes')
    cfg = load_config(path)
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False)
    loader.pop('sampler', None)
    loader.sampler = dict(type='DefaultSampler', shuffle=True)
    inner_dataset(loader).update(data_root=root, ann_file='annotations/train.json',
                                  data_prefix=dict(img='train/'), metainfo=None)
    batch = next(iter(Runner.build_dataloader(loader, seed=0)))
    assert batch['inputs'].shape[0] == 2 or len(batch['inputs']) == 2
