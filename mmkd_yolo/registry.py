"""mmkd_yolo's registries, all with scope ``mmkd_yolo``.

``MODELS`` and ``TASK_UTILS`` are children of mmrazor's: inside a model dict with
``_scope_='mmkd_yolo'`` a type is looked up here first, then in mmrazor
(``ConfigurableDistiller``, recorders, connectors, ``ChannelWiseDivergence``), then in
mmengine; mmyolo's modules keep their own ``_scope_='mmyolo'``.

The others are children of mmengine's roots: the Runner looks them up by a scoped name
(``'mmkd_yolo.YOLOv5DistillOptimizerConstructor'``) from mmyolo's scope, and mmengine
resolves a scope prefix only among the root's direct children.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import Registry
from mmrazor.registry import MODELS as MMRAZOR_MODELS
from mmrazor.registry import TASK_UTILS as MMRAZOR_TASK_UTILS
from mmrazor.registry.registry import build_razor_model_from_cfg

MODELS = Registry(
    'model',
    parent=MMRAZOR_MODELS,
    scope='mmkd_yolo',
    build_func=build_razor_model_from_cfg,
    locations=['mmkd_yolo.algorithms', 'mmkd_yolo.losses', 'mmkd_yolo.deploy',
               'mmkd_yolo.models'])
# Holds nothing of its own (the recorders are mmrazor's), but without a location mmengine
# imports ``mmkd_yolo.utils`` instead and, finding none, warns "mmkd_yolo is not installed".
TASK_UTILS = Registry(
    'task util', parent=MMRAZOR_TASK_UTILS, scope='mmkd_yolo', locations=['mmkd_yolo.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    scope='mmkd_yolo',
    locations=['mmkd_yolo.models'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmkd_yolo', locations=['mmkd_yolo.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmkd_yolo',
    locations=['mmkd_yolo.engine'])
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, scope='mmkd_yolo', locations=['mmkd_yolo.evaluation'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='mmkd_yolo', locations=['mmkd_yolo.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler',
    parent=MMENGINE_DATA_SAMPLERS,
    scope='mmkd_yolo',
    locations=['mmkd_yolo.datasets'])
FUNCTIONS = Registry(
    'function', parent=MMENGINE_FUNCTIONS, scope='mmkd_yolo', locations=['mmkd_yolo.datasets'])
