"""Shims for the old OpenMMLab 2.x stack on modern torch, and only those.

Everything else in mmkd_yolo reads as if the stack were modern. Five measures, each
applied where it is needed and reported by ``make env`` (:data:`ACTIVE_MEASURES`):

1. **mmrazor on torch 2.x.** mmrazor 1.0.0 builds quantization backend configs at import
   time with torch 1.13's private API, behind ``digit_version(torch.__version__) >=
   '1.13.0'`` checks (mmrazor issues #632, #615, #652). :func:`import_mmrazor` imports the
   distillation parts while ``torch.__version__`` reads an older version, so those
   quantization blocks are skipped, and restores the real version even on error.
   Quantization is then unavailable; distillation is unaffected.
2. **Checkpoints under torch's safe loader.** mmengine 0.10.7 calls ``torch.load`` without
   ``weights_only``; from torch 2.6 the safe default refuses mmengine's own checkpoints
   (``message_hub`` history buffers, numpy scalars). Upstream's fix forces
   ``weights_only=False``, which runs whatever a malicious pickle names. Instead
   :func:`mmkd_yolo.fileio.load_checkpoint_file` (``weights_only=True`` with an
   allow-list of data types) replaces mmengine's local-file loader, so resume,
   ``load_from``, ``--weights`` and teacher weights all go through it.
3. **Distributed training without CUDA.** mmengine 0.10.7's ``init_dist`` calls
   ``torch.cuda.set_device`` unconditionally; :func:`init_cpu_process_group` starts the
   gloo process group itself (the Runner then skips ``init_dist``). The CPU DDP wrapper
   (``device_ids=None``) is a registered module:
   :class:`mmkd_yolo.models.DistillDistributedDataParallel`.
4. **The ``mmkd_yolo::`` config scope.** mmengine 0.10.7 reads ``pkg::path`` configs (in
   ``_base_`` too) only for the packages of its own ``MODULE2PACKAGE`` table; this package
   adds itself (:func:`register_config_scope`). Its ``get_installed_path`` also assumes
   the package sits next to its ``dist-info``, which a PEP 660 editable install (``make
   install``) breaks; :func:`installed_package_path` asks the import system instead.
5. **The stack's known noise.** The old stack warns about itself on every run (its own
   deprecations, a registry fallback, a setuptools deprecation, an ONNX tracer's general
   caution): nothing a user can act on, and enough to hide the warnings that do concern
   the run. :data:`STACK_NOISE` names each message, who says it and why it is harmless;
   :func:`silence_stack_noise` ignores exactly those (Python warnings by module and
   message, mmengine's log records by message) and nothing the user's code says.
   :func:`init_detector_without_weights` is mmdet's ``init_detector`` without its
   "use COCO classes" warning, which no filter reaches.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os.path as osp
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple, Type

import torch

from .fileio import load_checkpoint_file

#: Compatibility measures in force in this process, for the environment report.
ACTIVE_MEASURES: List[str] = []

_MMRAZOR_PRETEND_TORCH = '1.12.1'


@contextlib.contextmanager
def torch_version_as(version: str) -> Iterator[None]:
    """Make ``torch.__version__`` read ``version`` inside the block, restored on exit.

    Args:
        version (str): The version string torch reports inside the block.
    """
    real = torch.__version__
    torch.__version__ = version
    try:
        yield
    finally:
        torch.__version__ = real


def _torch_at_least(version: str) -> bool:
    from mmengine.utils import digit_version
    return digit_version(torch.__version__) >= digit_version(version)


_MMRAZOR_RECURSION_LIMIT, _PYTHON_RECURSION_LIMIT = 2**20, 1000
RECURSION_MEASURE = ('Python recursion limit restored after importing mmrazor (it sets '
                     '2**20, which turns deep input into a segfault)')


def import_mmrazor() -> None:
    """Import and register mmrazor's distillation parts on any torch 2.x.

    After this, ``mmrazor.registry.MODELS`` holds ``SingleTeacherDistill``,
    ``ConfigurableDistiller``, the recorders, connectors and ``ChannelWiseDivergence``, and
    ``mmrazor.registry.HOOKS`` holds ``StopDistillHook``.
    """
    # Everything that reads torch's version at import time must see the real one.
    import mmcv  # noqa: F401
    import mmdet.models  # noqa: F401
    import mmengine.runner  # noqa: F401
    import mmyolo.models  # noqa: F401

    # mmrazor's tracer and channel-flow modules raise Python's recursion limit to 2**20 when
    # imported: deep input (a nested data.yaml, a model file's JSON) then recurses until the
    # C stack overflows and the process dies (a segfault, not an error). Distillation
    # needs no deep recursion; the interpreter's limit is restored.
    limit = sys.getrecursionlimit()
    if limit == _MMRAZOR_RECURSION_LIMIT:  # mmrazor was imported before this
        limit = _PYTHON_RECURSION_LIMIT
    try:
        if not _torch_at_least('1.13.0'):
            import mmrazor.engine  # noqa: F401
            import mmrazor.models  # noqa: F401
            return
        with torch_version_as(_MMRAZOR_PRETEND_TORCH):
            import mmrazor.engine  # noqa: F401
            import mmrazor.models  # noqa: F401
    finally:
        if sys.getrecursionlimit() != limit:
            sys.setrecursionlimit(limit)
            if RECURSION_MEASURE not in ACTIVE_MEASURES:
                ACTIVE_MEASURES.append(RECURSION_MEASURE)
    ACTIVE_MEASURES.append(
        f'mmrazor imported with torch.__version__ read as {_MMRAZOR_PRETEND_TORCH} '
        '(its torch-1.13 quantization code skipped; distillation unaffected)')


def _install_safe_checkpoint_loader() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
    ACTIVE_MEASURES.append(
        "mmengine's local checkpoint loader replaced: torch.load(weights_only=True) with "
        'an allow-list of mmengine/numpy data types')


def init_cpu_process_group() -> None:
    """Start torch.distributed with gloo for a torchrun launch on a machine without CUDA.

    Reads the rendezvous from torchrun's environment (``MASTER_ADDR``, ``RANK``, ...).
    """
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    measure = ('torch.distributed started with gloo by mmkd_yolo (mmengine 0.10.7 init_dist '
               'needs CUDA)')
    if measure not in ACTIVE_MEASURES:
        ACTIVE_MEASURES.append(measure)


def installed_package_path(package: str) -> str:
    """The folder of an installed package (its ``.mim`` holds its configs and tools).

    mmengine's ``get_installed_path`` joins the ``dist-info`` location and the package
    name: right for a package install, a non-existent folder for a PEP 660 editable one
    (the sources stay in the checkout). Where that folder does not exist, the import
    system's answer is taken.

    Args:
        package (str): An installed package's import name (e.g. ``mmyolo``).

    Returns:
        str: The package's folder.
    """
    from mmengine.utils import get_installed_path
    path = get_installed_path(package)
    if not osp.isdir(path):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin is not None:
            return osp.dirname(spec.origin)
    return path


def register_config_scope() -> None:
    """Let mmengine read ``mmkd_yolo::distill/yolov5/<name>.py`` (also in ``_base_``)."""
    from mmengine.config import config as mmengine_config
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('mmkd_yolo', 'mmkd_yolo')
    mmengine_config.get_installed_path = installed_package_path
    ACTIVE_MEASURES.append(
        "mmkd_yolo:: config scope registered with mmengine (editable installs found by "
        'the import system)')


@dataclass(frozen=True)
class KnownNoise:
    """A message of the stack that says nothing about the user's run.

    Args:
        source (str): Who says it: for a Python warning a regex of the module it is
            attributed to (``warnings``' ``module``), for a log record the package.
        message (str): Regex matched at the start of the message.
        why (str): Why it is harmless here.
        category (type, optional): A Python warning's class; None for a record of
            mmengine's ``MMLogger``.
    """
    source: str
    message: str
    why: str
    category: Optional[Type[Warning]] = None


#: Each message of the stack that a default run prints and that is not about the run.
STACK_NOISE: Tuple[KnownNoise, ...] = (
    KnownNoise(
        r'mmengine\.utils\.package_utils\Z|importlib\Z', 'pkg_resources is deprecated',
        "mmengine 0.10.7's is_installed imports and reloads setuptools' pkg_resources to "
        'find a pkg:: config; a deprecation for mmengine to act on',
        UserWarning),
    KnownNoise(
        r'torch\.(serialization|_weights_only_unpickler)\Z',
        r'Detected pickle protocol \d+ in the checkpoint',
        'torch.load(weights_only=True) reads protocol 3 checkpoints; one it cannot read '
        'fails with an error that names the file', UserWarning),
    KnownNoise(
        r'albumentations\.core\.composition\Z',
        'Got processor for bboxes, but no transform to process it',
        "mmyolo's YOLOv5 configs give mmdet.Albu box parameters for pixel-level "
        'transforms only (blur, gray, CLAHE): boxes do not move', UserWarning),
    KnownNoise(
        r'mmcv\.ops\.nms\Z', 'Converting a tensor to a Python boolean',
        "mmcv's nms asserts its inputs' shapes, run once by the tracer of the --nms "
        'ONNX export: the exported graph has those shapes', torch.jit.TracerWarning),
    KnownNoise(
        r'torch\.onnx\.', 'Exporting aten::index operator of advanced indexing',
        'the --nms graph indexes boxes with ONNX NonMaxSuppression\'s selected indices, '
        'never negative (the case the warning is about)', UserWarning),
    KnownNoise(
        'mmengine', r'Failed to search registry with scope "mmyolo" in the "log_processor"',
        'mmyolo registers no log processor: the fallback, mmengine\'s LogProcessor, is '
        "the one mmyolo's configs mean"),
    KnownNoise(
        'mmengine', '"FileClient" will be deprecated',
        "mmengine 0.10.7's CheckpointHook and save_checkpoint create a FileClient "
        'whatever the config says; checkpoints are written through backend_args'),
    KnownNoise(
        'mmengine', '"HardDiskBackend" is the alias of "LocalBackend"',
        'the same FileClient, for a local work_dir'),
    KnownNoise(
        'mmengine', '`save_param_scheduler` is True but `self.param_schedulers` is None',
        'said when a config has no param_scheduler, as YOLOv5 configs: their hook computes '
        'the learning rate from the iteration and epoch, there is no state to save'),
)


class StackNoiseFilter(logging.Filter):
    """Drops mmengine log records that :data:`STACK_NOISE` names."""

    def __init__(self) -> None:
        super().__init__()
        self._messages = [re.compile(noise.message) for noise in STACK_NOISE
                          if noise.category is None]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern.match(message) for pattern in self._messages)


def ignore_stack_warnings() -> None:
    """Ignore the Python warnings of :data:`STACK_NOISE`, by module and message.

    The same message from the user's code (another module) still shows.
    """
    for noise in STACK_NOISE:
        if noise.category is not None:
            warnings.filterwarnings('ignore', message=noise.message,
                                    category=noise.category, module=noise.source)


def silence_stack_noise() -> None:
    """Ignore the Python warnings and mmengine log records of :data:`STACK_NOISE`.

    Besides :func:`ignore_stack_warnings`, every ``MMLogger``, also those made later (the
    Runner makes its own), gets a :class:`StackNoiseFilter`.
    """
    from mmengine.logging import MMLogger
    ignore_stack_warnings()
    stack_filter = StackNoiseFilter()
    init = MMLogger.__init__

    @functools.wraps(init)
    def init_with_filter(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.addFilter(stack_filter)

    MMLogger.__init__ = init_with_filter
    for logger in MMLogger._instance_dict.values():
        logger.addFilter(stack_filter)
    ACTIVE_MEASURES.append(
        f"the stack's known noise silenced: {len(STACK_NOISE)} messages, each named with "
        'why in mmkd_yolo.compat.STACK_NOISE')


def init_detector_without_weights(config, device: str = 'cpu'):
    """mmdet's ``init_detector(config, None)``, for a caller that loads weights itself.

    mmdet then warns "checkpoint is None, use COCO classes by default" right after
    ``warnings.simplefilter('once')``, which puts itself before every filter: no filter
    can ignore it, and outside a ``catch_warnings`` block it would stay in force for the
    whole process. The block catches what the build warns and passes all else on.

    Args:
        config (Config): The detector's config (``model`` and test pipeline).
        device (str): Where the model is built.

    Returns:
        nn.Module: The detector, with mmdet's ``cfg`` and COCO ``dataset_meta``.
    """
    from mmdet.apis import init_detector
    with warnings.catch_warnings(record=True) as caught:
        model = init_detector(config, None, device=device)
    for w in caught:
        if not str(w.message).startswith('checkpoint is None, use COCO classes'):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno,
                                   source=w.source)
    return model


_applied = False


def apply() -> None:
    """Apply the import-time measures (1, 2, 4 and 5) once; called by ``import mmkd_yolo``."""
    global _applied
    if _applied:
        return
    silence_stack_noise()  # first, so that no step of the others warns
    import_mmrazor()
    _install_safe_checkpoint_loader()
    register_config_scope()
    _applied = True
