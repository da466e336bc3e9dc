"""Checkpoints written to a temporary file and renamed into place."""
from __future__ import annotations

import os
import os.path as osp
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend, but ``put`` never leaves a partial file in place.

    mmengine writes a checkpoint straight to its final name: a kill while saving leaves a
    truncated ``epoch_N.pth`` that looks like the newest checkpoint. Here the bytes go to
    ``<name>.tmp.<pid>`` in the same folder, are flushed to disk, and the file is renamed
    over the final name (atomic on POSIX), so a checkpoint path holds either nothing or a
    complete checkpoint. :func:`mmkd_yolo.apis.prepare_train_cfg` makes the
    CheckpointHook use this backend; converted checkpoints and COCO json files are written
    with it too.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        filepath = str(filepath)
        os.makedirs(osp.dirname(filepath) or '.', exist_ok=True)
        tmp = f'{filepath}.tmp.{os.getpid()}'
        try:
            with open(tmp, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)
