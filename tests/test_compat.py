"""The compatibility shims: mmrazor on torch 2.x, mmengine on the safe loader, mmcv ops,
the stack's known noise."""
import logging
import os
import pickle
import re
import subprocess
import sys
import warnings

import pytest
import torch

import mmkd_yolo
from mmkd_yolo import compat
from mmkd_yolo.errors import UnsafeCheckpointError
from mmkd_yolo.fileio import load_checkpoint_file

from .conftest import REPO, STUDENT_N
from .helpers.logs import logged


def test_mmrazor_distillation_parts_registered():
    from mmrazor.registry import HOOKS, MODELS, TASK_UTILS
    for name in ('SingleTeacherDistill', 'ConfigurableDistiller', 'ChannelWiseDivergence',
                 'ConvModuleConnector', 'L2Loss'):
        assert MODELS.get(name) is not None, name
    assert TASK_UTILS.get('ModuleOutputsRecorder') is not None
    assert HOOKS.get('StopDistillHook') is not None
    # and ours, through mmrazor's registry tree
    assert MODELS.get('mmkd_yolo.YOLOv5Distill') is mmkd_yolo.algorithms.YOLOv5Distill


def test_cwd_loss_computes_after_import():
    from mmengine.registry import DefaultScope
    from mmrazor.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmrazor'):  # whatever scope a test left
        cwd = MODELS.build(dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=1.0))
    s, t = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    assert cwd(s, t).item() > 0
    assert cwd(t, t).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_torch_version_unchanged_in_fresh_interpreter():
    code = ('import torch; real = torch.version.__version__; import mmkd_yolo, mmrazor.models; '
            'assert torch.__version__ == real, (torch.__version__, real); print(real)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == torch.version.__version__


def test_torch_version_restored_on_error():
    real = torch.__version__
    with pytest.raises(ZeroDivisionError):
        with compat.torch_version_as('1.12.1'):
            assert torch.__version__ == '1.12.1'
            1 / 0
    assert torch.__version__ == real


def test_measures_reported():
    text = ' '.join(compat.ACTIVE_MEASURES)
    assert 'mmrazor' in text and 'weights_only=True' in text
    from mmkd_yolo.apis.env import collect_env
    env = collect_env()
    assert env['torch'] == torch.__version__
    assert env['mmcv ops'].startswith('compiled')
    assert env['mmrazor'] == '1.0.0' and env['mmyolo'] == '0.6.0'
    assert any(k.startswith('compat measure') for k in env)


def test_batched_nms_runs():
    from mmcv.ops import batched_nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.],
                          [0., 0., 10., 10.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    idxs = torch.tensor([0, 0, 0, 1])  # the last box is another class: kept
    dets, keep = batched_nms(boxes, scores, idxs, dict(type='nms', iou_threshold=0.5))
    assert sorted(keep.tolist()) == [0, 2, 3]
    assert dets.shape == (3, 5)


class _ToyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def _toy_runner(work_dir, max_iters, resume=False):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.toy = _ToyModel()

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.toy(inputs, mode=mode)

    data = [dict(inputs=torch.randn(2)) for _ in range(8)]
    return Runner(
        model=Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        resume=resume,
        default_scope='mmengine',
        experiment_name=f'toy_{max_iters}_{resume}')


def test_mmengine_checkpoint_resumes_under_safe_loader(tmp_path):
    runner = _toy_runner(tmp_path, max_iters=2)
    runner.train()
    ckpt = tmp_path / 'iter_2.pth'
    assert ckpt.is_file()
    # The checkpoint holds what the plain safe loader refuses (history buffers, numpy).
    names = {n.split('.')[-1] for n in torch.serialization.get_unsafe_globals_in_checkpoint(ckpt)}
    assert 'HistoryBuffer' in names
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True)
    weight = runner.model.toy.linear.weight.detach().clone()

    resumed = _toy_runner(tmp_path, max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    assert (tmp_path / 'iter_4.pth').is_file()
    # history from before the resume survived the round trip
    hist = resumed.message_hub.get_scalar('train/loss')
    assert len(hist.data[0]) >= 4
    loaded = load_checkpoint_file(str(ckpt))
    assert torch.equal(loaded['state_dict']['toy.linear.weight'], weight)
    assert loaded['meta']['iter'] == 2


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd, ))


class _EvilEval:
    def __init__(self, expr):
        self.expr = expr

    def __reduce__(self):
        import builtins
        return (builtins.eval, (self.expr, ))


@pytest.mark.parametrize('kind', ['os.system', 'builtins.eval'])
def test_crafted_checkpoint_refused_and_not_run(tmp_path, kind):
    from mmengine.runner.checkpoint import _load_checkpoint
    marker = tmp_path / 'pwned'
    if kind == 'os.system':
        payload = _Evil(f'touch {marker}')
    else:
        payload = _EvilEval(f"open({str(marker)!r}, 'w').write('x')")
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': payload}, path)
    with pytest.raises(UnsafeCheckpointError, match='not a plain checkpoint') as info:
        _load_checkpoint(str(path), map_location='cpu')
    expected = 'system' if kind == 'os.system' else 'eval'
    assert expected in str(info.value)
    assert not marker.exists()


@pytest.mark.slow
def test_deep_input_is_a_recursion_error_not_a_crash():
    """mmrazor raises the recursion limit to 2**20 when imported; deep JSON (an ONNX
    file's metadata) then overflowed the C stack and killed the process."""
    code = ('import sys, json, mmkd_yolo\n'
            'assert sys.getrecursionlimit() < 2**20, sys.getrecursionlimit()\n'
            'try:\n    json.loads("[" * 200000)\nexcept RecursionError:\n    print("named")')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == 'named', (out.returncode, out.stderr)
    from mmkd_yolo.compat import ACTIVE_MEASURES, RECURSION_MEASURE
    assert RECURSION_MEASURE in ACTIVE_MEASURES


# --- the stack's known noise (measure 5) ----------------------------------------------------
#: Each Python warning of compat.STACK_NOISE as the stack words it, and the module it is
#: attributed to.
STACK_WARNINGS = [
    ('mmengine.utils.package_utils', UserWarning,
     'pkg_resources is deprecated as an API. See https://setuptools.pypa.io/en/latest/'
     'pkg_resources.html.'),
    ('importlib', UserWarning, 'pkg_resources is deprecated as an API.'),
    ('torch.serialization', UserWarning,
     'Detected pickle protocol 3 in the checkpoint, which was not the default pickle '
     'protocol used by `torch.load` (2).'),
    ('torch._weights_only_unpickler', UserWarning,
     'Detected pickle protocol 5 in the checkpoint, which was not the default pickle '
     'protocol used by `torch.load` (2).'),
    ('albumentations.core.composition', UserWarning,
     'Got processor for bboxes, but no transform to process it.'),
    ('mmcv.ops.nms', torch.jit.TracerWarning,
     'Converting a tensor to a Python boolean might cause the trace to be incorrect.'),
    ('torch.onnx._internal.torchscript_exporter.symbolic_opset11', UserWarning,
     'Exporting aten::index operator of advanced indexing in opset 17 is achieved by '
     'combination of multiple ONNX operators'),
]


@pytest.mark.parametrize('module,category,message', STACK_WARNINGS,
                         ids=[m for m, _, _ in STACK_WARNINGS])
def test_stack_warning_ignored_from_its_source_only(module, category, message):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        compat.ignore_stack_warnings()
        warnings.warn_explicit(message, category, 'stack.py', 1, module=module)
        assert caught == []
        # the user's own code saying the same is the user's business
        warnings.warn_explicit(message, category, 'train_mine.py', 1, module='train_mine')
    assert [str(w.message) for w in caught] == [message]


def _setup_cfg_filters():
    """The ``ignore:`` lines of setup.cfg's pytest ``filterwarnings``, as filter arguments."""
    import importlib
    filters = []
    with open(os.path.join(REPO, 'setup.cfg')) as f:
        for line in f:
            if line.strip().startswith('ignore:'):
                _, message, category, module = (line.strip().split(':', 3) + [''] * 2)[:4]
                path, _, name = category.rpartition('.')
                category = getattr(importlib.import_module(path or 'builtins'), name)
                filters.append((message, category, module))
    return filters


@pytest.mark.parametrize('module,category,message', STACK_WARNINGS,
                         ids=[m for m, _, _ in STACK_WARNINGS])
def test_setup_cfg_ignores_the_stack_warnings_too(module, category, message):
    """pytest resets warning filters for every test: setup.cfg names them again."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for f_message, f_category, f_module in _setup_cfg_filters():
            warnings.filterwarnings('ignore', f_message, f_category, f_module)
        warnings.warn_explicit(message, category, 'stack.py', 1, module=module)
    assert caught == []


def test_every_stack_warning_has_a_case():
    covered = {(m, c) for m, c, _ in STACK_WARNINGS}
    for noise in compat.STACK_NOISE:
        if noise.category is not None:
            assert any(re.match(noise.source, m) and c is noise.category
                       for m, c in covered), noise


STACK_LOG_RECORDS = [
    'Failed to search registry with scope "mmyolo" in the "log_processor" registry tree. '
    'As a workaround, the current "log_processor" registry in "mmengine" is used',
    '"FileClient" will be deprecated in future. Please use io functions in '
    'https://mmengine.readthedocs.io/en/latest/api/fileio.html#file-io',
    '"HardDiskBackend" is the alias of "LocalBackend" and the former will be deprecated in '
    'future.',
    '`save_param_scheduler` is True but `self.param_schedulers` is None, so skip saving '
    'parameter schedulers',
]


def test_stack_log_records_dropped_by_every_mmlogger():
    from mmengine.logging import print_log
    assert len(STACK_LOG_RECORDS) == sum(n.category is None for n in compat.STACK_NOISE)
    # the same words about another registry may be about the user's config
    users = ['Failed to search registry with scope "mmyolo" in the "model" registry tree.',
             'warm-up of 1000 iterations would take 500% of this run']
    with logged('noise_test_made_after_import') as records:  # as a Runner makes its own
        for message in STACK_LOG_RECORDS + users:
            print_log(message, 'current', logging.WARNING)
    assert [r.getMessage() for r in records] == users


def test_registry_fallback_does_not_say_mmkd_yolo_is_missing(monkeypatch):
    """A registry without a location makes mmengine import ``mmkd_yolo.utils`` at the
    first look-up, and, finding none, log "mmkd_yolo is not installed"."""
    from mmkd_yolo import registry
    for name in ('MODELS', 'TASK_UTILS', 'MODEL_WRAPPERS', 'HOOKS',
                 'OPTIM_WRAPPER_CONSTRUCTORS', 'DATASETS', 'DATA_SAMPLERS', 'FUNCTIONS'):
        reg = getattr(registry, name)
        monkeypatch.setattr(reg, '_imported', False)
        with logged(f'registry_test_{name}') as records:
            reg.get('mmkd_yolo.NoSuchType')
        assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == [], name


def test_init_detector_without_weights_is_quiet_and_leaves_filters():
    from mmkd_yolo.apis import load_config
    cfg = load_config(STUDENT_N)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        filters = list(warnings.filters)
        model = compat.init_detector_without_weights(cfg)
        # mmdet's simplefilter('once') would hide every later repeat of any warning
        assert warnings.filters == filters
    assert not [w for w in caught if 'COCO classes' in str(w.message)]
    assert len(model.dataset_meta['classes']) == 80


def test_init_detector_without_weights_passes_other_warnings_on(monkeypatch):
    import mmdet.apis

    def init_detector(config, checkpoint, device):
        warnings.simplefilter('once')
        warnings.warn('checkpoint is None, use COCO classes by default.')
        warnings.warn('the model is odd', RuntimeWarning)
        return torch.nn.Identity()

    monkeypatch.setattr(mmdet.apis, 'init_detector', init_detector)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        compat.init_detector_without_weights(None)
    assert [(w.category, str(w.message)) for w in caught] == [
        (RuntimeWarning, 'the model is odd')]
