"""Checkpoints written to a temporary file and renamed into place."""
from __future__ import annotations

import glob
import io
import os
import os.path as osp
import re
import socket
from pathlib import Path
from typing import Any, List, Union

from mmengine.fileio import LocalBackend, register_backend


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend, but ``put`` never leaves a partial file in place.

    mmengine writes a checkpoint straight to its final name: a kill while saving leaves a
    truncated ``epoch_N.pth`` that looks like the newest checkpoint. Here the bytes go to
    ``<name>.tmp.<host>.<pid>`` in the same folder, are flushed to disk, and the file is
    renamed over the final name (atomic on POSIX), so a checkpoint path holds either nothing
    or a complete checkpoint. The host in the name keeps writers on different machines of a
    shared folder apart (their pids may coincide), and lets :func:`remove_stale_tmp` judge
    only this machine's writers. :func:`mmkd_yolo.apis.prepare_train_cfg` makes the
    CheckpointHook use this backend; converted checkpoints and COCO json files are written
    with it too.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        filepath = str(filepath)
        os.makedirs(osp.dirname(filepath) or '.', exist_ok=True)
        remove_stale_tmp(osp.dirname(filepath) or '.')
        tmp = f'{filepath}.tmp.{_HOST}.{os.getpid()}'
        try:
            with open(tmp, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)


#: This machine's name as it appears in temporary file names (no dots: the pid follows).
_HOST = re.sub(r'[^A-Za-z0-9_-]', '_', socket.gethostname()) or 'host'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):  # another user's, or not a pid:
        return True  # keep the file
    return True


def remove_stale_tmp(folder: str) -> List[str]:
    """Delete the ``<name>.tmp.<host>.<pid>`` files of :class:`AtomicLocalBackend` in
    ``folder`` that a writer on this machine left behind (its process is gone: a kill
    while saving). Other machines' files, and anything else, are left alone.

    Returns:
        list[str]: The files removed.
    """
    removed = []
    pattern = re.compile(r'\.tmp\.' + re.escape(_HOST) + r'\.(\d{1,10})$')
    for path in glob.glob(osp.join(glob.escape(folder), f'*.tmp.{_HOST}.*')):
        m = pattern.search(path)
        if (not m or int(m.group(1)) == os.getpid() or not osp.isfile(path)
                or osp.islink(path) or _pid_alive(int(m.group(1)))):
            continue
        try:
            os.remove(path)
            removed.append(path)
        except OSError:  # another process cleaned it first, or not ours to remove
            pass
    return removed


def save_atomic(obj: Any, filepath: str) -> None:
    """``torch.save`` that never leaves a partial file under ``filepath``."""
    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    AtomicLocalBackend().put(buffer.getvalue(), filepath)
