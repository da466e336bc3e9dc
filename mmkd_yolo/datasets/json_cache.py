"""Converted data as cached json: the content key, one writer at a time, progress.

The COCO json files made from a ``data.yaml`` (:func:`~mmkd_yolo.datasets.coco_json_for`)
and from unlabeled images (:func:`~mmkd_yolo.datasets.unlabeled_coco_json`) are written
once to ``$MMKD_CACHE/datasets`` under a name that hashes what they were made from, and
read from there by every later run.

A multi-process launch (torchrun) prepares its config in every process before the
process group exists (mmengine starts NCCL in the Runner, later), so an mmengine barrier
cannot order the conversion; a lock file next to the json does: the first process to
take it converts, the others wait for it and then read the file it wrote. The same holds
for two runs started at once on the same data, and for the ranks of several nodes that
share a cache folder.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import os.path as osp
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Optional, Sequence, Tuple, TypeVar

from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from ..errors import DataError
from ..fileio import AtomicLocalBackend
from ..fileio import cache_dir as default_cache_dir

#: Threads reading image headers and label files. Measured on a 2-core machine, local
#: disk: the headers of 20,000 small JPEGs not in the page cache, 3.8-4.2 s in one thread
#: and 1.7-2.1 s in four (the reads wait on the disk, not on the GIL; 8 and 16 threads
#: were no faster); a 10,000-image conversion from the page cache, on a loaded machine,
#: 9.3-11.5 s in one thread and 8.2-9.4 s in four.
READ_THREADS = 4
#: Files a thread reads per task: fewer tasks, less overhead per file.
_CHUNK = 256
#: Files from which a pass shows a progress line: ~3 s at the ~3,000 files/s measured for
#: a conversion (20,000 images with 140,000 boxes in 6.4 s), so a small set stays quiet.
PROGRESS_MIN_FILES = 10_000

_T = TypeVar('_T')


def fingerprint(header: list, images: Sequence[str], what: str,
                extra_file: Optional[Callable[[str], str]] = None) -> str:
    """A short content key: ``header``, and each image's path, size and modification time
    (and the contents of ``extra_file(image)``, e.g. its label file, where it exists).

    Size and mtime stand in for the contents, as for make: an image replaced under the
    same name (e.g. by a rotated one) changes the key.

    Args:
        header (list): JSON-able values that change the conversion (version, names...).
        images (Sequence[str]): Image paths.
        what (str): What the images are, for the message (``'an image'``).
        extra_file (callable, optional): Maps an image to a file whose bytes are hashed.

    Returns:
        str: 16 hex digits.

    Raises:
        DataError: A listed image (or its extra file) cannot be read.
    """
    h = hashlib.sha1(json.dumps(header).encode())
    for path in images:
        h.update(os.fsencode(path))  # a file name need not be valid UTF-8
        try:
            st = os.stat(path)
        except (OSError, ValueError):  # ValueError: a NUL in a line of an image list
            raise DataError(f'{path!r} is listed as {what} but cannot be read: fix the '
                            'image list or restore the file.') from None
        h.update(f'|{st.st_size}|{st.st_mtime_ns}|'.encode())
        extra = extra_file(path) if extra_file else None
        if extra and osp.isfile(extra):
            try:
                with open(extra, 'rb') as f:
                    h.update(f.read())
            except OSError as e:
                raise DataError(f'{extra!r} cannot be read ({e}).') from None
    return h.hexdigest()[:16]


def cached_json(name: str, build: Callable[[], dict],
                cache_dir: Optional[str] = None) -> Tuple[str, Optional[dict]]:
    """The cached json file ``name``, built by ``build`` unless it exists.

    Args:
        name (str): File name; it holds the :func:`fingerprint` of what it is made from.
        build (callable): Makes the json's content (called at most once, by one process
            of those asking for the same file at the same time).
        cache_dir (str, optional): Defaults to the project's cache folder; the file is
            ``<cache_dir>/datasets/<name>``.

    Returns:
        tuple[str, dict | None]: The file's path, and its content when this call built
        it (None when it was there: read it if needed).
    """
    out = (osp.join(cache_dir, 'datasets', name) if cache_dir else
           default_cache_dir('datasets', name))
    if osp.isfile(out):
        return out, None
    os.makedirs(osp.dirname(out), exist_ok=True)
    with _one_writer(out):
        if osp.isfile(out):  # written by the process this one waited for
            return out, None
        data = build()
        AtomicLocalBackend().put(json.dumps(data).encode(), out)
    return out, data


@contextlib.contextmanager
def _one_writer(out: str) -> Iterator[None]:
    """Hold ``<out>.lock``; a process that finds it held says what it waits for."""
    with open(f'{out}.lock', 'a') as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print_log(f'waiting for another process (a rank of this launch, or another run '
                      f'on the same data) to write {out}', 'current')
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:
            # a file system without locks (some network mounts): each process converts,
            # and the atomic write still leaves one whole file
            pass
        yield  # the lock goes with the file's closing


def map_files(fn: Callable[[str], _T], paths: Sequence[str], task: str) -> Iterator[_T]:
    """``fn`` of each path, in order, read by :data:`READ_THREADS` threads, with a progress
    line (mmengine's ``ProgressBar``) for :data:`PROGRESS_MIN_FILES` files or more.

    Args:
        fn (callable): Reads one file. It may raise: the first error in path order is
            raised, and the files not yet read are left unread.
        paths (Sequence[str]): The files.
        task (str): What is done, said before the progress line.

    Yields:
        What ``fn`` returns, path by path.
    """
    bar = None
    if len(paths) >= PROGRESS_MIN_FILES:
        print_log(f'{task}: {len(paths)} files', 'current')
        bar = ProgressBar(len(paths), file=sys.stdout)
    # the bar is redrawn a hundred times at most: a log file gets every drawing
    step, pending = max(_CHUNK, len(paths) // 100), 0
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    pool = ThreadPoolExecutor(READ_THREADS)
    try:
        for results in pool.map(lambda chunk: [fn(p) for p in chunk], chunks):
            pending += len(results)
            if bar is not None and (pending >= step or bar.completed + pending == len(paths)):
                bar.update(pending)
                pending = 0
                if bar.completed == len(paths):
                    _end_line(bar)  # now: a caller's zip() does not ask for the end
                    bar = None
            yield from results
    finally:
        pool.shutdown(cancel_futures=True)
        if bar is not None:  # an error: what is said next starts on a line of its own
            _end_line(bar)


def _end_line(bar: ProgressBar) -> None:
    """End the line that the bar redraws, so that the log goes on below it."""
    bar.file.write('\n')
    bar.file.flush()
