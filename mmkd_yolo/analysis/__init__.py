"""What a checkpoint scores and costs, and checkpoints side by side (compare_checkpoints)."""
from .compare import Comparison, compare_checkpoints, default_names
from .matching import ImageMatch, match_image, rank_disagreement
from .measure import measure_model
from .report import ModelResult, results_table, write_per_class_ap
from .val_set import ValSet, load_predictions, load_val_set, val_set_files

__all__ = ['Comparison', 'compare_checkpoints', 'default_names', 'ImageMatch', 'match_image',
           'rank_disagreement', 'measure_model', 'ModelResult', 'results_table',
           'write_per_class_ap', 'ValSet', 'load_predictions', 'load_val_set',
           'val_set_files']
