"""data.yaml datasets: every real-data rule, the cache, and training with --data."""
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger

from mmkd_yolo.datasets import coco_json_for, load_data_yaml, yolo_split_to_coco
from mmkd_yolo.errors import DataError

from ..conftest import KD_OUT_S2N, REPO, quick_options
from ..helpers.logs import logged


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
    with logged('yolo_data_test') as records:
        coco = yolo_split_to_coco(info['train'], info['names'],
                                  logger=MMLogger.get_instance('yolo_data_test'))
    messages = [r.getMessage() for r in records]
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


def save_image(path, width, height, orientation=None):
    """A random image of ``width`` x ``height`` stored pixels (format by suffix), with an
    EXIF orientation tag unless None."""
    from PIL import Image
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    if orientation is None:
        img.save(path)
    else:
        exif = Image.Exif()
        exif[274] = orientation
        img.save(path, exif=exif)


@pytest.mark.parametrize('ext', ['jpg', 'png'])  # png: sized by asking the decoder
def test_exif_rotated_photo_has_decoder_size(tmp_path, ext):
    # A phone photo stored 200x100 with orientation 6 decodes (cv2) as 100 wide, 200 high;
    # the label is relative to that displayed image.
    import mmcv
    data = make_yolo_tree(tmp_path, {'a': '0 0.3 0.25 0.4 0.1\n'})
    img = tmp_path / 'images' / 'train' / f'a.{ext}'
    (tmp_path / 'images' / 'train' / 'a.jpg').unlink()
    save_image(img, 200, 100, orientation=6)
    height, width = mmcv.imread(str(img)).shape[:2]
    assert (width, height) == (100, 200)  # what training's LoadImageFromFile will see
    info = load_data_yaml(data)
    with open(coco_json_for(info['train'], info['names'], cache_dir=str(tmp_path / 'c'))) as f:
        coco = json.load(f)
    assert (coco['images'][0]['width'], coco['images'][0]['height']) == (width, height)
    assert coco['annotations'][0]['bbox'] == pytest.approx(
        [(0.3 - 0.2) * width, (0.25 - 0.05) * height, 0.4 * width, 0.1 * height])


@pytest.mark.parametrize('orientation,size', [(None, (80, 40)), (6, (48, 64))])
def test_cache_redone_when_an_image_changes(tmp_path, orientation, size):
    # Same label file; the image is replaced by one of another size, or by the same
    # 64x48 pixels rotated through EXIF.
    data = make_yolo_tree(tmp_path, {'a': '0 0.5 0.5 0.5 0.5\n'})
    info = load_data_yaml(data)
    cache = str(tmp_path / 'cache')
    first = coco_json_for(info['train'], info['names'], cache_dir=cache)
    with open(first) as f:
        image = json.load(f)['images'][0]
    assert (image['width'], image['height']) == (64, 48)
    img = tmp_path / 'images' / 'train' / 'a.jpg'
    if orientation is None:
        save_image(img, *size)
    else:
        save_image(img, 64, 48, orientation=orientation)
    second = coco_json_for(info['train'], info['names'], cache_dir=cache)
    assert second != first
    with open(second) as f:
        coco = json.load(f)
    assert (coco['images'][0]['width'], coco['images'][0]['height']) == size
    assert coco['annotations'][0]['bbox'] == pytest.approx(
        [size[0] / 4, size[1] / 4, size[0] / 2, size[1] / 2])


def test_polygon_line_is_its_bounding_box(tmp_path):
    # 64x48 image; points x = .1 .5 .4 .2 and y = .2 .1 .6 .5: box x .1-.5, y .1-.6.
    data = make_yolo_tree(tmp_path, {'a': '0 0.5 0.5 0.5 0.5\n'
                                          '1 0.1 0.2 0.5 0.1 0.4 0.6 0.2 0.5\n'})
    info = load_data_yaml(data)
    coco = yolo_split_to_coco(info['train'], info['names'])
    assert len(coco['annotations']) == 2
    poly = coco['annotations'][1]
    assert poly['category_id'] == 2
    assert poly['bbox'] == pytest.approx([6.4, 4.8, 25.6, 24.0])
    assert poly['area'] == pytest.approx(25.6 * 24.0)


@pytest.mark.parametrize('line,match', [
    ('0 0.1 0.2 0.5 0.1 0.4 0.6 0.2\n', r'8 fields, expected 5 .* or an odd number >= 7'),
    ('0 0.1 0.2 0.5 0.1 0.4 0.6 0.2 0.5 0.3 0.3 0.1\n', r'12 fields, expected 5 .* odd'),
    ('0 0.1 0.2 0.5 0.1 0.4\n', r'6 fields, expected 5 .* odd'),
    ('0 0.1 0.2 0.5 0.1 1.4 0.6 0.2 0.5\n', r'normalised to \[0, 1\]'),
    ('0 0.1 0.2 0.5 nan 0.4 0.6 0.2 0.5\n', 'NaN or infinite'),
    ('0 0.5 inf 0.5 0.5\n', 'NaN or infinite'),
])
def test_malformed_polygon_names_file_and_line(tmp_path, line, match):
    data = make_yolo_tree(tmp_path, {'a': '1 0.5 0.5 0.2 0.2\n' + line})
    info = load_data_yaml(data)
    with pytest.raises(DataError, match=match) as err:
        yolo_split_to_coco(info['train'], info['names'])
    assert 'a.txt, line 2' in str(err.value)


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


# --- malformed input found by tests/test_fuzz_inputs.py: a named error, never a traceback --
@pytest.mark.parametrize('text,match', [
    ('just a string\n', 'holds a str, not a mapping'),
    ('- train\n- val\n', 'holds a list, not a mapping'),
    ('7\n', 'holds a int, not a mapping'),
    ('train: [\n', 'not valid YAML'),
    ('train: images\nval: images\nnc: {a: 2}\n', 'nc is dict'),
    ('train: images\nval: images\nnc: [2]\n', 'nc is list'),
    ('train: images\nval: images\nnc: two\n', 'nc is str'),
    ('train: images\nval: images\nnc: 0\nnames: []\n', 'nc is int 0'),
    ('train: images\nval: images\nnc: 100000000000000000000\n', 'nc is int'),
    ('train: images\nval: images\nnames: 5\n', 'names is int 5'),
    ('train: images\nval: images\nnames: catdog\n', 'names is str'),
    ('train: images\nval: images\nnames: {0: cat, 2: dog}\n', r'keys are not the class ids'),
    ('train: images\nval: images\nnames: {0: cat, a: dog}\n', r'keys are not the class ids'),
    ('train: images\nval: images\nnames: [[cat], [dog]]\n', 'names holds list'),
    ('path: [a, b]\ntrain: images\nval: images\nnames: [a]\n', 'path is list'),
    ('train: ~\nval: images\nnames: [a]\n', 'train is NoneType'),
    ('train: [1, 2]\nval: images\nnames: [a]\n', 'train is list'),
    ('train: images\nval: {a: 1}\nnames: [a]\n', 'val is dict'),
    ('train: images\nval: "2024-99-99"\nnames: !!timestamp 2024-99-99\n', 'not valid YAML'),
])
def test_malformed_data_yaml_is_a_data_error(tmp_path, text, match):
    # each was a raw TypeError / ValueError / AttributeError, or (nc: 0) accepted, or
    # (nc: 1e20 without names) a hang listing 10^20 class names
    bad = tmp_path / 'data.yaml'
    bad.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        load_data_yaml(str(bad))
    assert str(bad) in str(err.value)


@pytest.mark.parametrize('data', [
    b'train: images\nval: images\nnames: [ch\xe2t]\n',  # Latin-1, not UTF-8
    b'\xff\xfe\x00\x01garbage',
    b'names: ' + b'[' * 100_000,  # nested 100000 levels deep
])
def test_undecodable_data_yaml_is_a_data_error(tmp_path, data):
    # was a UnicodeDecodeError (the file was read as text); the deep nesting took 6.7 s at
    # 5000 levels and 150 s at 80000 with the pure-Python loader (mmrazor raises the
    # recursion limit to 2^20 on import)
    import time
    bad = tmp_path / 'data.yaml'
    bad.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(DataError, match='not valid YAML'):
        load_data_yaml(str(bad))
    assert time.perf_counter() - start < 5


def test_yaml_alias_bomb_in_names_is_refused_quickly(tmp_path):
    # 9 levels of 9 aliases: 9^9 names once expanded; str() of it did not end (and grew
    # the process by gigabytes). A name must be one scalar.
    import time

    from ..helpers.fuzz_inputs import yaml_alias_bomb
    bad = tmp_path / 'data.yaml'
    bad.write_text(yaml_alias_bomb(9, 9).replace('@ROOT@', str(tmp_path)))
    start = time.perf_counter()
    with pytest.raises(DataError, match='names holds list'):
        load_data_yaml(str(bad))
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize('content,match', [
    (b'0 0.5 0.5 0.5 0.5\n1 0.5 0.5 0.2 0.\xe9\n', r'is not UTF-8 text \(byte 0xe9'),
    ('0 0.5 0.5 0.5 0.5\n'.encode('utf-16'), 'is not UTF-8 text'),
])
def test_label_file_not_utf8_is_a_data_error(tmp_path, content, match):
    # was a UnicodeDecodeError from reading the label file as text
    data = make_yolo_tree(tmp_path, {'a': ''})
    (tmp_path / 'labels' / 'train' / 'a.txt').write_bytes(content)
    info = load_data_yaml(data)
    with pytest.raises(DataError, match=match) as err:
        yolo_split_to_coco(info['train'], info['names'])
    assert 'a.txt' in str(err.value)


def test_label_file_with_bom_and_cr_newlines_is_read(tmp_path):
    # a UTF-8 BOM (Windows editors) is not part of the first class id; a lone \r ends a
    # line as it does when a text file is read
    data = make_yolo_tree(tmp_path, {'a': ''})
    (tmp_path / 'labels' / 'train' / 'a.txt').write_bytes(
        b'\xef\xbb\xbf0 0.5 0.5 0.5 0.5\r1 0.25 0.25 0.1 0.2\r\n')
    info = load_data_yaml(data)
    coco = yolo_split_to_coco(info['train'], info['names'])
    assert [a['category_id'] for a in coco['annotations']] == [1, 2]


@pytest.mark.parametrize('lines', [b'images/train/a.jpg\n\xff\xfe\n', b'images/train/a\x00.jpg\n'])
def test_bad_image_list_is_a_data_error(tmp_path, lines):
    # was a UnicodeDecodeError (list read as text) or a ValueError from os.stat (a NUL)
    make_yolo_tree(tmp_path, {'a': '0 0.5 0.5 0.5 0.5\n'})
    (tmp_path / 'list.txt').write_bytes(lines)
    data = tmp_path / 'data.yaml'
    data.write_text(f'path: {tmp_path}\ntrain: list.txt\nval: list.txt\nnames: [cat, dog]\n')
    info = load_data_yaml(str(data))
    with pytest.raises(DataError, match='list.txt|cannot be read'):
        coco_json_for(info['train'], info['names'], cache_dir=str(tmp_path / 'cache'))


def test_decompression_bomb_header_is_a_data_error(tmp_path):
    # a PNG header declaring 100000 x 100000 px: PIL's DecompressionBombError escaped
    from ..helpers.fuzz_inputs import png_header
    data = make_yolo_tree(tmp_path, {'a': '0 0.5 0.5 0.5 0.5\n'})
    (tmp_path / 'images' / 'train' / 'a.jpg').unlink()
    (tmp_path / 'images' / 'train' / 'a.png').write_bytes(
        png_header(100000, 100000, idat=b'x\x9cc\x00\x00\x00\x01\x00\x01'))
    info = load_data_yaml(data)
    with pytest.raises(DataError, match='a.png.*cannot be read as an image'):
        yolo_split_to_coco(info['train'], info['names'])


def test_file_name_not_utf8_and_glob_characters_in_folder(tmp_path):
    # an image named with a byte that is not UTF-8 was a UnicodeEncodeError in the cache
    # key; a dataset folder named like a glob pattern ("d[1]") found no images at all
    import os
    root = tmp_path / 'd[1]'
    data = make_yolo_tree(root, {'a': '0 0.5 0.5 0.5 0.5\n'})
    odd = os.fsdecode(b'\xff')
    os.rename(root / 'images' / 'train' / 'a.jpg', root / 'images' / 'train' / f'{odd}.jpg')
    os.rename(root / 'labels' / 'train' / 'a.txt', root / 'labels' / 'train' / f'{odd}.txt')
    info = load_data_yaml(data)
    out = coco_json_for(info['train'], info['names'], cache_dir=str(tmp_path / 'cache'))
    with open(out) as f:
        coco = json.load(f)
    assert len(coco['images']) == 1 and len(coco['annotations']) == 1
