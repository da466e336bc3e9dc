"""The one place that knows the old OpenMMLab 2.x stack's quirks on modern torch.

Everything else in mmkd_yolo reads as if the stack were modern. Two measures:

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
   :func:`load_checkpoint_file` keeps ``weights_only=True`` and admits, for the duration of
   the call only, the few types these checkpoints hold (:data:`SAFE_GLOBALS`); it replaces
   mmengine's local-file loader, so resume, ``load_from`` and teacher weights all go
   through it.
"""
from __future__ import annotations

import contextlib
import os.path as osp
import pickle
import re
from typing import Any, Iterator, List

import numpy as np
import torch

from .errors import CheckpointError, UnsafeCheckpointError

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

    if not _torch_at_least('1.13.0'):
        import mmrazor.engine  # noqa: F401
        import mmrazor.models  # noqa: F401
        return
    with torch_version_as(_MMRAZOR_PRETEND_TORCH):
        import mmrazor.engine  # noqa: F401
        import mmrazor.models  # noqa: F401
    ACTIVE_MEASURES.append(
        f'mmrazor imported with torch.__version__ read as {_MMRAZOR_PRETEND_TORCH} '
        '(its torch-1.13 quantization code skipped; distillation unaffected)')


def _numpy_globals() -> list:
    """The numpy callables and types that pickled numpy scalars and arrays name."""
    try:  # numpy >= 2 moved ``numpy.core`` to ``numpy._core``
        multiarray = np._core.multiarray
    except AttributeError:  # pragma: no cover - numpy 1.x
        multiarray = np.core.multiarray
    dtype_classes = [type(np.dtype(t)) for t in np.sctypeDict.values()]
    return [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype
            ] + sorted(set(dtype_classes), key=str)


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as mmengine checkpoints use it, and only so.

    A pickled ``HistoryBuffer`` refers to its statistics methods
    (``HistoryBuffer.min``, ...) as ``getattr(HistoryBuffer, 'min')``. Admitting the real
    ``builtins.getattr`` would let a pickle fetch any attribute of any admitted object;
    this stand-in answers only those look-ups.
    """
    from mmengine.logging import HistoryBuffer
    # the four built-in methods are registered lazily, by the first HistoryBuffer made
    allowed = {'min', 'max', 'current', 'mean'} | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'Weights only load failed: GLOBAL builtins.getattr({obj!r}, {name!r}) is not a '
        'look-up a plain checkpoint makes')


def safe_globals() -> list:
    """Types a plain mmengine checkpoint may name, beyond what torch already admits.

    These are data types, plus a ``getattr`` limited to ``HistoryBuffer``'s statistics
    methods: nothing on the list runs code when unpickled.
    """
    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
            (_history_buffer_getattr, '__builtin__.getattr')] + _numpy_globals()


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint with ``weights_only=True`` and the mmengine allow-list.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As for :func:`torch.load`.

    Returns:
        The unpickled checkpoint (usually a dict).

    Raises:
        CheckpointError: The file is missing or is not a checkpoint torch can read.
        UnsafeCheckpointError: The pickle names a callable outside the allow-list (e.g.
            ``os.system``): it is not a plain checkpoint and is not loaded.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointError(
            f'checkpoint {filename!r} does not exist. Check the path '
            '(load_from / --resume / teacher weights).')
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if 'Weights only load failed' not in msg:
            raise CheckpointError(
                f'{filename!r} is not a checkpoint torch can read ({_first_line(e)}). '
                'It may be truncated or of another format; use another file.') from None
        names = re.findall(r'GLOBAL ([\w.]+)', msg) or re.findall(
            r'global[s]? [`\']?([\w.]+)', msg) or ['an unknown callable']
        raise UnsafeCheckpointError(
            f'{filename!r} is not a plain checkpoint: its pickle names '
            f'{names[0]!r}, which is not a tensor, container or known checkpoint type. '
            'It was not loaded (loading it would run that code). If it is an '
            'Ultralytics YOLOv5 .pt, convert it with '
            'tools/model_converters/yolov5_to_mmyolo.py; otherwise re-save the state '
            'dict from a trusted environment.') from None
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        raise CheckpointError(
            f'{filename!r} is not a checkpoint torch can read ({_first_line(e)}). '
            'It may be truncated or of another format; use another file.') from None


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return f'{type(e).__name__}: {lines[0] if lines else ""}'


def _install_safe_checkpoint_loader() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
    ACTIVE_MEASURES.append(
        "mmengine's local checkpoint loader replaced: torch.load(weights_only=True) with "
        'an allow-list of mmengine/numpy data types')


def apply() -> None:
    """Apply every measure once; called by ``import mmkd_yolo``."""
    if ACTIVE_MEASURES:
        return
    import_mmrazor()
    _install_safe_checkpoint_loader()
