"""The bottom layer: files and checkpoints (cache folder, atomic writes, safe loading,
finding the checkpoint to resume from). Imports nothing else of mmkd_yolo but errors."""
from .atomic_local_backend import AtomicLocalBackend, remove_stale_tmp, save_atomic
from .cache import cache_dir, file_sha256
from .resume import find_resume_checkpoint, is_complete_checkpoint
from .safe_load import (PickledModule, RestrictedUnpickler, load_checkpoint_file,
                        restricted_load)

__all__ = ['AtomicLocalBackend', 'remove_stale_tmp', 'save_atomic', 'cache_dir',
           'file_sha256', 'find_resume_checkpoint', 'is_complete_checkpoint', 'PickledModule',
           'RestrictedUnpickler', 'load_checkpoint_file', 'restricted_load']
