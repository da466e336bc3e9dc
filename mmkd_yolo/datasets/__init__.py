from .synthetic import CLASSES as SHAPES_CLASSES
from .synthetic import make_shapes_dataset

__all__ = ['SHAPES_CLASSES', 'make_shapes_dataset']
