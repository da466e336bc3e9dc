"""Finding the checkpoint to resume from: the newest complete one."""
from __future__ import annotations

import glob
import os.path as osp
import re
import zipfile
from typing import List, Optional

from mmengine.logging import print_log

from .atomic_local_backend import remove_stale_tmp


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole torch zip checkpoint (a truncated one has no
    central directory, or lacks its pickle)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(name.endswith('data.pkl') for name in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _step(path: str) -> int:
    m = re.search(r'(?:epoch|iter)_(\d+)\.pth$', path)
    return int(m.group(1)) if m else -1


def checkpoint_candidates(work_dir: str) -> List[str]:
    """epoch_/iter_ checkpoints, newest step first, then ``last_checkpoint``'s target."""
    found = sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')) +
                   glob.glob(osp.join(work_dir, 'iter_*.pth')),
                   key=lambda p: (_step(p), osp.getmtime(p)), reverse=True)
    last_file = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last_file):
        with open(last_file) as f:
            last = f.read().strip()
        if last and osp.abspath(last) not in {osp.abspath(p) for p in found}:
            found.append(last)
    return found


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint of ``work_dir``, skipping (and naming) broken ones.

    Also deletes the temporary files a killed save left behind (``*.tmp.<host>.<pid>``).
    """
    for path in remove_stale_tmp(work_dir):
        print_log(f'removed {path}: left by a save that was interrupted', 'current')
    for path in checkpoint_candidates(work_dir):
        if osp.isfile(path) and is_complete_checkpoint(path):
            return path
        print_log(f'skipping {path}: missing or incomplete (interrupted while saving?)',
                  'current')
    return None
