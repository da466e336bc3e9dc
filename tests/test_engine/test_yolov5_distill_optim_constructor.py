"""YOLOv5DistillOptimizerConstructor: student and connectors in the optimizer, never the
teacher."""
import copy

from mmengine.config import Config

from mmkd_yolo.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from ..conftest import KD_CWD_S2N


def build(config):
    cfg = Config.fromfile(config)
    return MODELS.build(copy.deepcopy(cfg.model)), cfg


def test_optimizer_excludes_teacher():
    model, cfg = build(KD_CWD_S2N)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type='mmkd_yolo.YOLOv5DistillOptimizerConstructor', optim_wrapper_cfg=dict(
            type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
                                                weight_decay=5e-4))))
    optim = constructor(model)
    in_optim = {id(p) for g in optim.optimizer.param_groups for p in g['params']}
    assert not any(id(p) in in_optim for p in model.teacher.parameters())
    assert all(id(p) in in_optim for p in model.student.parameters())
    assert all(id(p) in in_optim for p in model.distiller.connectors.parameters())
