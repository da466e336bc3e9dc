"""Atomic writes: converter outputs and checkpoints, and the files a killed save leaves."""
import os
import subprocess

import torch

from mmkd_yolo.fileio import load_checkpoint_file, remove_stale_tmp, save_atomic
from mmkd_yolo.fileio.atomic_local_backend import _HOST


def test_stale_tmp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen(['true'])
    dead.wait()
    stale = tmp_path / f'epoch_3.pth.tmp.{_HOST}.{dead.pid}'
    stale.write_bytes(b'half a checkpoint')
    live = tmp_path / f'epoch_4.pth.tmp.{_HOST}.{os.getpid()}'  # a save in progress: kept
    live.write_bytes(b'being written')
    kept = [live]
    for name in ('notes.tmp.txt', f'data.tmp.{dead.pid}',  # not written by us
                 f'a.pth.tmp.other-host.{dead.pid}',  # another machine's writer
                 f'b.pth.tmp.{_HOST}.99999999999999999999'):  # not a pid
        (tmp_path / name).write_bytes(b'not ours to remove')
        kept.append(tmp_path / name)
    (tmp_path / f'c.pth.tmp.{_HOST}.{dead.pid}').mkdir()  # a folder: left alone
    kept.append(tmp_path / f'c.pth.tmp.{_HOST}.{dead.pid}')
    save_atomic({'state_dict': {'w': torch.ones(2)}}, str(tmp_path / 'student.pth'))
    assert not stale.exists() and all(p.exists() for p in kept)
    assert torch.equal(load_checkpoint_file(str(tmp_path / 'student.pth'))['state_dict']['w'],
                       torch.ones(2))
    assert remove_stale_tmp(str(tmp_path)) == []
