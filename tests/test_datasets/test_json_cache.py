"""The cached json of converted data: one writer among processes, progress, read order."""
import threading
import time

import pytest

from mmkd_yolo.datasets import coco_json_for, load_data_yaml, unlabeled_coco_json
from mmkd_yolo.datasets import json_cache, unlabeled_images, yolo_data
from mmkd_yolo.errors import DataError

from ..helpers.logs import logged
from .test_unlabeled_images import write_images
from .test_yolo_data import make_yolo_tree


def labeled_case(tmp_path):
    info = load_data_yaml(make_yolo_tree(tmp_path, {f'a{i}': '0 0.5 0.5 0.5 0.5\n'
                                                    for i in range(3)}))
    return (yolo_data, 'yolo_split_to_coco',
            lambda cache: coco_json_for(info['train'], info['names'], cache_dir=cache))


def unlabeled_case(tmp_path):
    write_images(tmp_path / 'u', 3)
    return (unlabeled_images, 'unlabeled_coco',
            lambda cache: unlabeled_coco_json([str(tmp_path / 'u')], ['a'],
                                              cache_dir=cache)[0])


def in_threads(convert, n):
    """``convert()`` in ``n`` threads at once (each opens the lock file itself, as a
    process would): their results, or the error each raised."""
    results = [None] * n
    start = threading.Barrier(n)

    def run(k):
        start.wait()
        try:
            results[k] = convert()
        except Exception as e:  # noqa: BLE001  returned to the test
            results[k] = e

    threads = [threading.Thread(target=run, args=(k, )) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), 'a process waits forever'
    return results


@pytest.mark.parametrize('case', [labeled_case, unlabeled_case])
def test_ranks_starting_together_convert_once_and_read_the_same_file(tmp_path, monkeypatch,
                                                                     case):
    """As the processes of a torchrun launch do: one converts, the others wait for its
    file (before, each converted the whole set itself)."""
    module, name, convert = case(tmp_path)
    real, calls = getattr(module, name), []

    def slow(*args, **kwargs):
        calls.append(1)
        time.sleep(1.0)  # the others arrive while it converts
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, slow)
    with logged(f'json_cache_test_{name}') as records:
        paths = in_threads(lambda: convert(str(tmp_path / 'cache')), 4)
    assert len(calls) == 1
    assert len(set(paths)) == 1 and isinstance(paths[0], str), paths
    waited = [r for r in records if 'waiting for another process' in r.getMessage()]
    assert 1 <= len(waited) <= 3  # (one arriving after the file is written just reads it)


def test_a_failed_conversion_fails_every_rank_without_a_hang(tmp_path, monkeypatch):
    """The first writer's error releases the lock: the next one tries (and fails) itself,
    so each process reports the error instead of waiting for a file that never comes."""
    module, name, convert = labeled_case(tmp_path)

    def broken(*args, **kwargs):
        time.sleep(0.2)
        raise DataError('a.txt, line 1: broken')

    monkeypatch.setattr(module, name, broken)
    results = in_threads(lambda: convert(str(tmp_path / 'cache')), 3)
    assert all(isinstance(r, DataError) and 'broken' in str(r) for r in results), results


def test_progress_line_for_many_files_only(tmp_path, monkeypatch, capsys):
    paths = write_images(tmp_path / 'u', 5)
    with logged('json_cache_quiet_test') as records:
        assert list(json_cache.map_files(len, paths, 'reading things')) == \
            [len(p) for p in paths]
    assert '5/5' not in capsys.readouterr().out and not records
    monkeypatch.setattr(json_cache, 'PROGRESS_MIN_FILES', 5)
    with logged('json_cache_progress_test') as records:
        # zip() stops at the last path, without asking the reader for its end: the bar's
        # line is ended all the same, so that the next output starts on a line of its own
        assert len(list(zip(paths, json_cache.map_files(len, paths, 'reading things')))) == 5
        print('next')
    out = capsys.readouterr().out
    assert '5/5' in out and out.endswith('\nnext\n')  # mmengine's ProgressBar
    assert [r.getMessage() for r in records] == ['reading things: 5 files']


def test_threaded_reads_keep_path_order_and_raise_the_first_error(tmp_path, monkeypatch):
    monkeypatch.setattr(json_cache, '_CHUNK', 4)
    paths = [f'p{i}' for i in range(40)]
    assert list(json_cache.map_files(lambda p: int(p[1:]) * 10, paths, 'x')) == \
        list(range(0, 400, 10))

    def fails(p):
        if p in ('p7', 'p30'):
            raise DataError(f'{p} is broken')
        return p

    with pytest.raises(DataError, match='p7 is broken'):
        list(json_cache.map_files(fails, paths, 'x'))
