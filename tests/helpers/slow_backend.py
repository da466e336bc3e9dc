"""Fault injection for the crash tests: a checkpoint backend that writes slowly.

Imported into a training subprocess with ``custom_imports``; it gives a test a window of
about a second in which a checkpoint is being written, to kill the process in.
"""
import os
import time

from mmengine.fileio import register_backend

from mmkd_yolo.fileio import AtomicLocalBackend
from mmkd_yolo.fileio.atomic_local_backend import _HOST


@register_backend('slow_atomic_local')
class SlowAtomicLocalBackend(AtomicLocalBackend):

    def put(self, obj, filepath):
        # write the temporary file in slices first, then let the real backend finish
        tmp = f'{filepath}.tmp.{_HOST}.{os.getpid()}'  # the real backend's name
        step = max(1, len(obj) // 20)
        with open(tmp, 'wb') as f:
            for i in range(0, len(obj), step):
                f.write(obj[i:i + step])
                f.flush()
                time.sleep(0.05)
        super().put(obj, filepath)
