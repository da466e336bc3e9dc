"""Unlabeled image sources: listing, the COCO json of images only, unreadable images
and the val overlap check."""
import json
import logging
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

from mmkd_yolo.datasets import count_overlap, list_unlabeled_images, unlabeled_coco_json
from mmkd_yolo.errors import DataError

from ..helpers.logs import logged


def write_images(folder, n, size=(40, 64), seed=0, ext='.jpg'):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f'img{i}{ext}'
        cv2.imwrite(str(path), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
        paths.append(str(path))
    return paths


def test_folder_glob_list_and_file_sources(tmp_path):
    a = write_images(tmp_path / 'a' / 'deep', 3)
    b = write_images(tmp_path / 'b', 2, ext='.png', seed=1)
    (tmp_path / 'b' / 'notes.txt').write_text('not an image')
    listing = tmp_path / 'list.txt'
    listing.write_text('b/img0.png\n\n' + a[0] + '\n')
    assert list_unlabeled_images([str(tmp_path / 'a')]) == sorted(a)
    assert list_unlabeled_images([str(tmp_path / 'b' / '*.png')]) == sorted(b)
    assert list_unlabeled_images([str(tmp_path / '**' / 'img1.*')]) == sorted([a[1], b[1]])
    assert list_unlabeled_images([str(listing)]) == sorted([a[0], b[0]])
    # repeated sources: each image once
    assert list_unlabeled_images([str(tmp_path / 'a'), a[2], str(listing)]) == \
        sorted(a + [b[0]])


@pytest.mark.parametrize('source,match', [
    ('missing_folder', 'no such folder, file or glob'),
    ('empty', 'hold no images'),
    ('a/*.png', 'hold no images'),
])
def test_sources_without_images_are_named(tmp_path, source, match):
    write_images(tmp_path / 'a', 1)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match=match) as e:
        list_unlabeled_images([str(tmp_path / source)])
    assert source.split('/')[-1] in str(e.value)


def test_json_lists_images_only_with_sizes_and_is_cached(tmp_path):
    paths = write_images(tmp_path / 'u', 3, size=(30, 50))
    out, images = unlabeled_coco_json([str(tmp_path / 'u')], ['cat', 'dog'],
                                      cache_dir=str(tmp_path / 'cache'))
    coco = json.load(open(out))
    assert images == sorted(paths) == [img['file_name'] for img in coco['images']]
    assert {(img['width'], img['height']) for img in coco['images']} == {(50, 30)}
    assert coco['annotations'] == [] and [c['name'] for c in coco['categories']] == \
        ['cat', 'dog']
    again, _ = unlabeled_coco_json([str(tmp_path / 'u')], ['cat', 'dog'],
                                   cache_dir=str(tmp_path / 'cache'))
    assert again == out
    write_images(tmp_path / 'u', 4, size=(30, 50))  # a new image: a new json
    assert unlabeled_coco_json([str(tmp_path / 'u')], ['cat', 'dog'],
                               cache_dir=str(tmp_path / 'cache'))[0] != out


def test_unreadable_images_are_left_out_and_named(tmp_path):
    write_images(tmp_path / 'u', 2)
    (tmp_path / 'u' / 'broken.jpg').write_bytes(b'\x00not a jpeg at all')
    with logged('unlabeled_test') as records:
        _, images = unlabeled_coco_json([str(tmp_path / 'u')], ['a'],
                                        cache_dir=str(tmp_path / 'cache'))
    assert len(images) == 2 and not any('broken' in p for p in images)
    warned = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert any('1 of 3 unlabeled images cannot be read' in m and 'broken.jpg' in m
               for m in warned), warned
    only_broken = tmp_path / 'v'
    only_broken.mkdir()
    shutil.copy(tmp_path / 'u' / 'broken.jpg', only_broken / 'x.jpg')
    with pytest.raises(DataError, match='none of the 1 unlabeled images can be read'):
        unlabeled_coco_json([str(only_broken)], ['a'], cache_dir=str(tmp_path / 'cache'))


def test_overlap_counts_same_files_and_copies(tmp_path):
    val = write_images(tmp_path / 'val', 4, seed=3)
    other = write_images(tmp_path / 'other', 3, seed=4)
    shutil.copy(val[1], tmp_path / 'other' / 'copy_of_val1.jpg')
    unlabeled = other + [str(tmp_path / 'other' / 'copy_of_val1.jpg'), val[2],
                         osp.join(str(tmp_path), 'val', '..', 'val', 'img3.jpg')]
    assert count_overlap(unlabeled, val) == 3
    assert count_overlap(other, val) == 0
