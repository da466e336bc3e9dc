"""data.yaml datasets: every real-data rule, the cache, and training with --data."""
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmkd_yolo.datasets import coco_json_for, load_data_yaml, yolo_split_to_coco
from mmkd_yolo.errors import DataError

from ..conftest import KD_OUT_S2N, REPO, quick_options


def make_yolo_tree(root, labels, orphans=(), names=('cat', 'dog')):
    """images/train/<name>.jpg (64 px) and labels/train/<name>.txt; None = no label file."""
    (root / 'images' / 'train').mkdir(parents=True, exist_ok=True)
    (root / 'labels' / 'train').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, text in labels.items():
        cv2.imwrite(str(root / 'images' / 'train' / f'{name}.jpg'),
                    rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        if text is not None:
            (root / 'labels' / 'train' / f'{name}.txt').write_text(text)
    for name in orphans:
        (root / 'labels' / 'train' / f'{name}.txt').write_text('0 0.5 0.5 0.1 0.1\n')
    data = root / 'data.yaml'
    data.write_text(f'path: {root}\ntrain: images/train\nval: images/train\n'
                    f'names: {list(names)}\n')
    return str(data)


def test_background_kept_orphans_reported(tmp_path, caplog):
    data = make_yolo_tree(tmp_path, {'a': '0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.1 0.2\n', 'b': None},
                          orphans=('ghost1', 'ghost2'))
    info = load_data_yaml(data)
    assert info['names'] == ['cat', 'dog'] and info['nc'] == 2
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('yolo_data_test')
    messages = []
    import logging
    handler = logging.Handler()
    handler.emit = lambda r: messages.append(r.getMessage())
    logger.addHandler(handler)
    coco = yolo_split_to_coco(info['train'], info['names'], logger=logger)
    assert len(coco['images']) == 2  # the background image is kept
    assert len(coco['annotations']) == 2
    first = coco['annotations'][0]
    assert first['category_id'] == 1 and first['bbox'] == pytest.approx([16, 12, 32, 24])
    assert coco['annotations'][1]['category_id'] == 2
    text = '\n'.join(messages)
    assert '1 without a label file' in text
    assert '2 label files have no image' in text and 'ghost1.txt' in text


@pytest.mark.parametrize('line,match', [
    ('0 0.5 0.5 0.5\n', '4 fields, expected 5'),
    ('0 0.5 abc 0.5 0.5\n', 'non-numeric'),
    ('0 0.5 0.5 1.5 0.5\n', r'normalised to \[0, 1\]'),
    ('2 0.5 0.5 0.5 0.5\n', r'class id 2 is not an integer in \[0, 1\]'),
    ('0.5 0.5 0.5 0.5 0.5\n', 'class id 0.5'),
])
def test_malformed_line_names_file_and_line(tmp_path, line, match):
    data = make_yolo_tree(tmp_path, {'a': '1 0.5 0.5 0.2 0.2\n' + line})
    info = load_data_yaml(data)
    with pytest.raises(DataError, match=match) as err:
        yolo_split_to_coco(info['train'], info['names'])
    assert 'a.txt, line 2' in str(err.value)


def test_bad_data_files(tmp_path):
    with pytest.raises(DataError, match='does not exist'):
        load_data_yaml(str(tmp_path / 'none.yaml'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('train: images\nnames: [a, b]\n')
    with pytest.raises(DataError, match="no 'val' entry"):
        load_data_yaml(str(bad))
    bad.write_text('train: images\nval: images\nnc: 3\nnames: [a, b]\n')
    with pytest.raises(DataError, match='nc=3 but 2 names'):
        load_data_yaml(str(bad))


def test_cache_redone_when_labels_change(tmp_path):
    data = make_yolo_tree(tmp_path, {'a': '0 0.5 0.5 0.5 0.5\n'})
    info = load_data_yaml(data)
    cache = str(tmp_path / 'cache')
    first = coco_json_for(info['train'], info['names'], cache_dir=cache)
    assert coco_json_for(info['train'], info['names'], cache_dir=cache) == first
    (tmp_path / 'labels' / 'train' / 'a.txt').write_text('1 0.5 0.5 0.5 0.5\n0 0.1 0.1 0.1 0.1\n')
    second = coco_json_for(info['train'], info['names'], cache_dir=cache)
    assert second != first
    with open(second) as f:
        assert len(json.load(f)['annotations']) == 2


@pytest.mark.slow
def test_train_with_data_yaml(tmp_path):
    labels = {f'im{i}': f'{i % 2} 0.5 0.5 0.4 0.3\n' for i in range(7)}
    labels['bg'] = None
    data = make_yolo_tree(tmp_path / 'ds', labels)
    work_dir = tmp_path / 'work'
    opts = [f'{k}={v}' for k, v in quick_options(work_dir, epochs=1).items()]
    env = dict(__import__('os').environ, MMKD_CACHE=str(tmp_path / 'cache'))
    out = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'train.py'), KD_OUT_S2N,
                          '--data', data, '--cfg-options'] + opts, cwd=tmp_path,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert 'coco/bbox_mAP' in out.stdout
    assert osp.isfile(work_dir / 'epoch_1.pth')


@pytest.mark.slow
def test_broken_label_is_a_clean_cli_error(tmp_path):
    data = make_yolo_tree(tmp_path / 'ds', {'a': '7 0.5 0.5 0.4 0.3\n'})
    env = dict(__import__('os').environ, MMKD_CACHE=str(tmp_path / 'cache'))
    out = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'train.py'), KD_OUT_S2N,
                          '--data', data], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert 'a.txt, line 1' in out.stderr and 'Traceback' not in out.stderr
