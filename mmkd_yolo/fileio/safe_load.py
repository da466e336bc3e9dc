"""Loading checkpoints without running code from them: one allow-list, two loaders.

A pickle names the callables that rebuild its objects, and ``pickle.load`` calls them:
a checkpoint that names ``os.system`` runs it. Both loaders here resolve every name
against the same allow-list of inert data constructors (:func:`data_globals`: tensors,
numpy scalars and arrays, containers, ``bytes``) and refuse anything else before it
is called:

* :func:`load_checkpoint_file` - mmengine checkpoints and state dicts:
  ``torch.load(weights_only=True)`` plus, for the duration of the call, the allow-list,
  mmengine's ``HistoryBuffer`` and a ``getattr`` limited to its statistics methods.
  mmengine 0.10.7's own loader cannot read its checkpoints under torch >= 2.6's safe
  default, and upstream's fix turns the safe loader off; :mod:`mmkd_yolo.compat` puts
  this function in its place.
* :func:`restricted_load` - Ultralytics YOLOv5 ``.pt`` files, full pickles of
  ``models.yolo.Model``: the allow-list plus inert stand-ins (:class:`PickledModule`) for
  the YOLOv5 and torch module classes, so no YOLOv5 source tree is needed and none of its
  code runs.
"""
from __future__ import annotations

import os.path as osp
import pickle
import re
import types
from collections import OrderedDict
from typing import Any, Dict, Tuple

import numpy as np
import torch

from ..errors import CheckpointError, UnsafeCheckpointError


def _numpy_multiarray():
    try:  # numpy >= 2 moved ``numpy.core`` to ``numpy._core``
        return np._core.multiarray
    except AttributeError:  # pragma: no cover - numpy 1.x
        return np.core.multiarray


def data_globals() -> Dict[Tuple[str, str], Any]:
    """``(module, name) -> object`` of every global a plain checkpoint may name.

    Data constructors only: calling any of them with any arguments builds a value and
    runs no code from the file. ``bytes`` is here because pickle protocol 2 (torch's)
    writes an empty ``bytes`` (an empty numpy array's data, e.g. in an empty mmengine
    ``HistoryBuffer``) as a call of ``builtins.bytes``.
    """
    table = {
        ('collections', 'OrderedDict'): OrderedDict,
        ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
        ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
        ('torch', 'Size'): torch.Size,
        ('numpy', 'dtype'): np.dtype,
        ('numpy', 'ndarray'): np.ndarray,
    }
    for builtins_name in ('builtins', '__builtin__'):
        for obj in (set, frozenset, bytes):
            table[(builtins_name, obj.__name__)] = obj
    multiarray = _numpy_multiarray()
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        table[(mod, 'scalar')] = multiarray.scalar
        table[(mod, '_reconstruct')] = multiarray._reconstruct
    for dtype_class in {type(np.dtype(t)) for t in np.sctypeDict.values()}:
        table[(dtype_class.__module__, dtype_class.__name__)] = dtype_class
    return table


# --- mmengine checkpoints: torch's weights_only loader, widened by the allow-list ----------
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
    """What :func:`load_checkpoint_file` admits beyond torch's own weights-only list."""
    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
            (_history_buffer_getattr, '__builtin__.getattr')] + [
                (obj, f'{mod}.{name}') for (mod, name), obj in data_globals().items()]


#: Deflate's largest ratio: a compressed zip member cannot truly hold more than this
#: many bytes per stored byte. (torch writes its records uncompressed.)
_MAX_DEFLATE_RATIO = 1032


def check_archive(filename: str) -> None:
    """Refuse a zip checkpoint whose directory declares more data than the file holds.

    torch's zip reader allocates each record at the size the archive's directory
    declares before reading it: a 1.5 kB file claiming a 4 GiB record cost 8 GiB of
    memory and over 15 s of copying, and only then failed. The directory is read here first
    (Python's ``zipfile`` reads it, not the records). Files that are not zips (torch's
    legacy format, or no checkpoint at all) are left to ``torch.load``.

    Raises:
        CheckpointError: The archive's directory is unreadable or declares a record
            larger than the file could hold.
    """
    import zipfile
    try:
        with open(filename, 'rb') as f:
            if f.read(4) != b'PK\x03\x04':  # what torch.load takes for a zip checkpoint
                return
            size = f.seek(0, 2)
    except OSError:  # missing or unreadable: the caller's load says so
        return
    try:
        with zipfile.ZipFile(filename) as archive:
            infos = archive.infolist()
    except Exception as e:  # noqa: BLE001  zipfile raises many types for a damaged directory
        # (BadZipFile, NotImplementedError for an unknown zip version, struct.error, ...)
        raise CheckpointError(
            f'{filename!r} is not a checkpoint torch can read (its zip directory is '
            f'unreadable: {_first_line(e)}). It may be truncated; use another file.') from None
    for info in infos:
        stored = info.compress_type == zipfile.ZIP_STORED
        limit = size if stored else min(info.compress_size, size) * _MAX_DEFLATE_RATIO
        if info.file_size > limit or info.compress_size > size or (
                stored and info.file_size != info.compress_size):
            raise CheckpointError(
                f'{filename!r} is not a checkpoint torch can read: its record '
                f'{info.filename!r} declares {info.file_size} bytes ({info.compress_size} '
                f'stored) in a file of {size} bytes. It was not read (that would allocate '
                'what the file merely declares); the file is damaged or crafted: use '
                'another one.')


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint with ``weights_only=True`` and the allow-list.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As for :func:`torch.load`.

    Returns:
        The unpickled checkpoint (usually a dict).

    Raises:
        CheckpointError: The file is missing or is not a checkpoint torch can read (or
            declares more data than it holds, :func:`check_archive`).
        UnsafeCheckpointError: The pickle names a callable outside the allow-list (e.g.
            ``os.system``): it is not a plain checkpoint and is not loaded.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointError(
            f'checkpoint {filename!r} does not exist. Check the path '
            '(load_from / --resume / --weights / teacher weights).')
    check_archive(filename)
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
            r'global[s]? [`\']?([\w.]+)', msg)
        if not names:
            # torch reports a damaged pickle (e.g. "Unsupported operand 80") with the same
            # words as a refused global: without a name in it, nothing unsafe was seen
            found = re.search(r'WeightsUnpickler error:\s*([^\n]+)', msg)
            raise CheckpointError(
                f'{filename!r} is not a checkpoint torch can read (its pickle is damaged: '
                f'{found.group(1).strip() if found else "unreadable"}). It may be truncated '
                'or of another format; use another file.') from None
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


# --- Ultralytics pickles: the allow-list plus inert module stand-ins -----------------------
#: Module prefixes whose classes become :class:`PickledModule` stand-ins.
_MODULE_PREFIXES = ('models.', 'torch.nn.modules.')


class PickledModule:
    """Inert stand-in for a pickled ``nn.Module``: its attributes, and no behaviour.

    Attributes:
        pickled_class (str): The class the pickle named, e.g. ``models.common.Conv``.
    """

    pickled_class = ''

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise UnsafeCheckpointError(
                f'{self.pickled_class} carries a state of type {type(state).__name__}, '
                'not the attribute dict of a module')
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f'<pickled {self.pickled_class}>'


_stub_classes: Dict[str, type] = {}


def _stub_class(qualname: str) -> type:
    if qualname not in _stub_classes:
        _stub_classes[qualname] = types.new_class(
            qualname.rsplit('.', 1)[-1], (PickledModule, ),
            exec_body=lambda ns: ns.update(pickled_class=qualname))
    return _stub_classes[qualname]


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle reader that admits :func:`data_globals`, torch dtypes and inert module
    stand-ins only."""

    _data = None

    def find_class(self, module: str, name: str) -> Any:
        if RestrictedUnpickler._data is None:
            RestrictedUnpickler._data = data_globals()
        if (module, name) in self._data:
            return self._data[(module, name)]
        if module == 'torch' and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.startswith(_MODULE_PREFIXES) and name.isidentifier() and name[0].isupper():
            return _stub_class(f'{module}.{name}')
        raise UnsafeCheckpointError(
            f'the pickle names {module}.{name}, which is neither tensor data nor a model '
            'class: refused, nothing was run. This is not a plain YOLOv5 checkpoint; '
            'only load it if you trust its source, and then re-save its state dict.')


class _RestrictedPickleModule(types.ModuleType):
    """What ``torch.load(pickle_module=...)`` needs: torch subclasses ``Unpickler``."""

    Unpickler = RestrictedUnpickler
    __name__ = 'mmkd_yolo_restricted_pickle'

    @staticmethod
    def load(file, **kwargs):  # used by torch for legacy (non-zip) files
        return RestrictedUnpickler(file, **kwargs).load()


_PICKLE_MODULE = _RestrictedPickleModule('mmkd_yolo_restricted_pickle')


def restricted_load(path: str) -> Any:
    """Load a full pickle (an Ultralytics ``.pt``) with :class:`RestrictedUnpickler`.

    torch's own zip reading and storage handling are used; only the names the pickle may
    resolve are restricted. (``weights_only=True`` would refuse the module classes
    outright; ``weights_only=False`` with the standard pickle would run them.)

    Raises:
        UnsafeCheckpointError: The pickle names a callable outside the allow-list.
        CheckpointError: The file is missing or not a torch file.
    """
    check_archive(path)
    try:
        # weights_only=False only lets torch use our pickle_module: torch's unpickler then
        # subclasses RestrictedUnpickler, so every global still goes through find_class.
        return torch.load(path, map_location='cpu', weights_only=False,
                          pickle_module=_PICKLE_MODULE)
    except (UnsafeCheckpointError, FileNotFoundError):
        raise
    except Exception as e:
        raise CheckpointError(f'{path!r} could not be read as a torch checkpoint '
                              f'({type(e).__name__}: {e}).') from None
