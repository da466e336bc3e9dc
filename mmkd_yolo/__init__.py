"""mmkd_yolo: YOLOv5 teacher -> student knowledge distillation for OpenMMLab.

Importing the package applies the compatibility measures of :mod:`mmkd_yolo.compat`
(mmrazor on torch 2.x, safe checkpoint loading) and registers its modules, so that a
config with ``custom_imports = dict(imports=['mmkd_yolo'])`` reaches them.
"""
from . import compat

compat.apply()

from . import (algorithms, datasets, deploy, engine, evaluation, fileio, losses,  # noqa: E402,F401
               models)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
