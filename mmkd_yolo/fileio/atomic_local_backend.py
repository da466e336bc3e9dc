"""Checkpoints written to a temporary file and renamed into place."""
from __future__ import annotations

import glob
import io
import os
import os.path as osp
import re
from pathlib import Path
from typing import Any, List, Union

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
        remove_stale_tmp(osp.dirname(filepath) or '.')
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_tmp(folder: str) -> List[str]:
    """Delete ``*.tmp.<pid>`` files of :class:`AtomicLocalBackend` in ``folder`` whose
    writer is no longer running (a kill while saving leaves them behind).

    Returns:
        list[str]: The files removed.
    """
    removed = []
    for path in glob.glob(osp.join(glob.escape(folder), '*.tmp.*')):
        m = re.search(r'\.tmp\.(\d+)$', path)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            try:
                os.remove(path)
                removed.append(path)
            except FileNotFoundError:  # another process cleaned it first
                pass
    return removed


def save_atomic(obj: Any, filepath: str) -> None:
    """``torch.save`` that never leaves a partial file under ``filepath``."""
    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    AtomicLocalBackend().put(buffer.getvalue(), filepath)
