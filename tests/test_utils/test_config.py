"""The distillation switches and teacher config handling."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd_yolo.errors import ConfigError
from mmkd_yolo.utils.config import apply_distill_switches, load_detector_cfg, neck_widths
from mmkd_yolo.utils.setup import apply_teacher_args, prepare_train_cfg

from ..conftest import CONFIGS, KD_CWD_S2N, KD_OUT_S2N, STUDENT_N, TEACHER_S


def feature_parts(cfg):
    d = cfg.model.distiller
    return ({k: v.source for k, v in d.student_recorders.items()}, dict(d.get('connectors', {})),
            set(d.distill_losses), set(d.loss_forward_mappings))


def test_d_feature_adds_cwd_with_connectors_for_other_widths():
    cfg = Config.fromfile(KD_OUT_S2N)
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
    cfg = Config.fromfile(KD_OUT_S2N.replace('s-to-n', 'n-to-n'))
    apply_distill_switches(cfg, d_feature=True)
    _, connectors, losses, _ = feature_parts(cfg)
    assert connectors == {} and 'loss_cwd2' in losses
    mapping = cfg.model.distiller.loss_forward_mappings.loss_cwd0
    assert 'connector' not in mapping.preds_S


def test_d_output_removes_feature_parts():
    cfg = Config.fromfile(KD_CWD_S2N)
    apply_distill_switches(cfg, d_output=True)
    recorders, connectors, losses, mappings = feature_parts(cfg)
    assert recorders == {'preds': 'bbox_head.head_module'}
    assert connectors == {} and losses == mappings == {'loss_out'}


def test_switches_exclude_each_other_and_need_a_distill_config():
    with pytest.raises(ConfigError, match='exclude each other'):
        apply_distill_switches(Config.fromfile(KD_OUT_S2N), d_output=True, d_feature=True)
    with pytest.raises(ConfigError, match='not a distillation config'):
        apply_distill_switches(Config.fromfile(STUDENT_N), d_feature=True)


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
    assert neck_widths(load_detector_cfg('mmyolo::yolov5/yolov5_x-v61_syncbn_fast_8xb16-300e_coco.py')) \
        == [320, 640, 1280]


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
    model = MODELS.build(cfg.model)
    widths = {'n': 0.25, 's': 0.5, 'm': 0.75, 'l': 1.0, 'x': 1.25}
    assert model.student.backbone.widen_factor == widths[student]
    assert model.teacher.backbone.widen_factor == widths[teacher]
    has_cwd = any(k.startswith('loss_cwd') for k in model.distiller.distill_losses)
    assert has_cwd == (method == 'kd-out-cwd')
    assert len(model.distiller.connectors) == (3 if has_cwd and teacher != student else 0)
