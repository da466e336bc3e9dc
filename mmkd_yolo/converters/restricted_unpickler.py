"""Read an Ultralytics YOLOv5 checkpoint without its source tree and without running it.

An Ultralytics ``.pt`` is a full pickle of ``models.yolo.Model``: plain ``torch.load``
imports the YOLOv5 repository and calls whatever the pickle names. Here every name the
pickle asks for goes through :meth:`RestrictedUnpickler.find_class`:

* tensor rebuilding (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``, storage
  types, dtypes), ``collections.OrderedDict``, ``set``, numpy scalars: data only;
* module classes of YOLOv5 (``models.*``) and of torch (``torch.nn.modules.*``): replaced
  by inert stand-ins (:class:`PickledModule`) that only keep the pickled attributes
  (``_parameters``, ``_buffers``, ``_modules``, ``yaml``, ``names``, ...);
* anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...): refused with
  :class:`~mmkd_yolo.errors.UnsafeCheckpointError` before anything is called.
"""
from __future__ import annotations

import pickle
import types
from collections import OrderedDict
from typing import Any, Dict

import numpy as np
import torch

from ..errors import CheckpointError, UnsafeCheckpointError

#: Module prefixes whose classes become :class:`PickledModule` stand-ins.
_MODULE_PREFIXES = ('models.', 'torch.nn.modules.')

_DATA_GLOBALS = {
    ('collections', 'OrderedDict'): OrderedDict,
    ('builtins', 'set'): set,
    ('__builtin__', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('__builtin__', 'frozenset'): frozenset,
    ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
    ('torch', 'Size'): torch.Size,
    ('numpy', 'dtype'): np.dtype,
    ('numpy', 'ndarray'): np.ndarray,
}
try:
    _multiarray = np._core.multiarray
except AttributeError:  # pragma: no cover - numpy 1.x
    _multiarray = np.core.multiarray
for _mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
    _DATA_GLOBALS[(_mod, 'scalar')] = _multiarray.scalar
    _DATA_GLOBALS[(_mod, '_reconstruct')] = _multiarray._reconstruct


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


def _allowed_dtype(module: str, name: str) -> bool:
    return module == 'torch' and isinstance(getattr(torch, name, None), torch.dtype)


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle reader that admits data and inert module stand-ins only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _DATA_GLOBALS:
            return _DATA_GLOBALS[(module, name)]
        if _allowed_dtype(module, name):
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
    """Load ``path`` with :class:`RestrictedUnpickler` (on CPU).

    torch's own zip reading and storage handling are used; only the names the pickle may
    resolve are restricted. (``weights_only=True`` would refuse the module classes
    outright; ``weights_only=False`` with the standard pickle would run them.)

    Raises:
        UnsafeCheckpointError: The pickle names a callable outside the allow-list.
        CheckpointError: The file is missing or not a torch file.
    """
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
