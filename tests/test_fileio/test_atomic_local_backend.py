"""Atomic writes: converter outputs and checkpoints, and the files a killed save leaves."""
import os
import subprocess

import torch

from mmkd_yolo.fileio import load_checkpoint_file, remove_stale_tmp, save_atomic


def test_stale_tmp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen(['true'])
    dead.wait()
    stale = tmp_path / f'epoch_3.pth.tmp.{dead.pid}'
    stale.write_bytes(b'half a checkpoint')
    live = tmp_path / f'epoch_4.pth.tmp.{os.getpid()}'  # a save in progress: kept
    live.write_bytes(b'being written')
    other = tmp_path / 'notes.tmp.txt'
    other.write_bytes(b'not ours')
    save_atomic({'state_dict': {'w': torch.ones(2)}}, str(tmp_path / 'student.pth'))
    assert not stale.exists() and live.exists() and other.exists()
    assert torch.equal(load_checkpoint_file(str(tmp_path / 'student.pth'))['state_dict']['w'],
                       torch.ones(2))
    assert remove_stale_tmp(str(tmp_path)) == []
