"""Images without labels, for distillation: listing, a COCO json of images only, checks.

The output-distillation loss needs no labels, so a student can learn from the teacher on
images nobody annotated (``tools/train.py --unlabeled``). Sources are folders (searched
recursively), globs (``'footage/**/*.jpg'``), ``.txt`` lists of image paths or single
image files. The COCO json they become has images and categories but no annotations,
and is cached by content like :func:`~mmkd_yolo.datasets.coco_json_for`'s.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import os.path as osp
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log

from ..errors import DataError
from .json_cache import cached_json, fingerprint, map_files
from .yolo_data import IMG_EXTS, image_size, list_images

_CACHE_VERSION = 1


def list_unlabeled_images(sources: Sequence[str]) -> List[str]:
    """The image files of unlabeled sources, absolute, sorted, each once.

    Args:
        sources (Sequence[str]): Folders, globs, ``.txt`` image lists or image files.

    Returns:
        list[str]: Image paths.

    Raises:
        DataError: A source that does not exist or holds no images, named.
    """
    images = set()
    for src in sources:
        if not osp.exists(src) and glob.has_magic(src):
            found = []
            for path in glob.glob(src, recursive=True):
                found += list_images([path]) if osp.isdir(path) else (
                    [osp.abspath(path)] if path.lower().endswith(IMG_EXTS) else [])
        elif osp.isfile(src) and src.lower().endswith(IMG_EXTS):
            found = [osp.abspath(src)]
        elif osp.exists(src):
            found = list_images([src])
        else:
            raise DataError(f'unlabeled images {src!r}: no such folder, file or glob match '
                            '(--unlabeled takes a folder, a glob, a .txt list of images or '
                            'an image).')
        if not found:
            raise DataError(f'unlabeled images {src!r} hold no images (looked for '
                            f'{", ".join(IMG_EXTS)}): check the path or the glob.')
        images.update(found)
    return sorted(images)


def _size_or_reason(path: str):
    """``(width, height)`` of an image, or why it cannot be read."""
    try:
        return image_size(path)
    except DataError as e:
        return str(e)


def unlabeled_coco(images: List[str], names: Sequence[str]) -> Dict:
    """COCO dict of ``images`` (no annotations); unreadable images are left out, named.

    Headers are read by a few threads, with a progress line for many images
    (:func:`~mmkd_yolo.datasets.json_cache.map_files`).

    Args:
        images (list[str]): Image paths.
        names (Sequence[str]): Class names (categories 1..nc, as the labeled set's).

    Returns:
        dict: The COCO dict; ``info.skipped`` lists the images left out.

    Raises:
        DataError: No image could be read.
    """
    coco = dict(images=[], annotations=[],
                categories=[dict(id=i + 1, name=n) for i, n in enumerate(names)])
    skipped: List[Tuple[str, str]] = []
    sizes = map_files(_size_or_reason, images, 'reading the sizes of the unlabeled images')
    for path, size in zip(images, sizes):
        if isinstance(size, str):
            skipped.append((path, size))
            continue
        coco['images'].append(dict(id=len(coco['images']), file_name=path, width=size[0],
                                   height=size[1]))
    if not coco['images']:
        raise DataError(f'none of the {len(images)} unlabeled images can be read as an '
                        f'image; the first: {skipped[0][1]}')
    coco['info'] = dict(skipped=[p for p, _ in skipped])
    return coco


def unlabeled_coco_json(sources: Sequence[str], names: Sequence[str],
                        cache_dir: Optional[str] = None) -> Tuple[str, List[str]]:
    """Path of the (cached) COCO json of the unlabeled images, and the images in it.

    Images that cannot be read are left out with a warning that names them (their
    number and the first five), so nothing is dropped unsaid. Made by one process at a
    time: the others wait and read its file
    (:func:`~mmkd_yolo.datasets.json_cache.cached_json`).

    Args:
        sources (Sequence[str]): See :func:`list_unlabeled_images`.
        names (Sequence[str]): Class names of the labeled set.
        cache_dir (str, optional): Defaults to the project's cache folder.

    Returns:
        tuple[str, list[str]]: The json's path and the images it lists.
    """
    images = list_unlabeled_images(sources)
    key = fingerprint([_CACHE_VERSION, 'unlabeled', list(names)], images,
                      'an unlabeled image')
    out, coco = cached_json(f'unlabeled-{key}.json', partial(unlabeled_coco, images, names),
                            cache_dir)
    if coco is None:
        with open(out) as f:
            coco = json.load(f)
    skipped = coco['info']['skipped']
    if skipped:
        first = ', '.join(osp.basename(p) for p in skipped[:5])
        print_log(f'{len(skipped)} of {len(images)} unlabeled images cannot be read and are '
                  f'left out: {first}' + (' ...' if len(skipped) > 5 else ''), 'current',
                  logging.WARNING)
    return out, [img['file_name'] for img in coco['images']]


def _content_key(path: str) -> Tuple[int, str]:
    with open(path, 'rb') as f:
        return os.path.getsize(path), hashlib.sha1(f.read(1 << 16)).hexdigest()


def _stat(path: str) -> Optional[os.stat_result]:
    try:
        return os.stat(path)
    except OSError:
        return None


def count_overlap(unlabeled: Sequence[str], val: Sequence[str]) -> int:
    """How many unlabeled images are also val images: the same file (by any path or link),
    or a copy (same size and first 64 KiB). Distilling on val images inflates the val mAP.

    One ``stat`` per unlabeled image, by a few threads (``realpath`` and a size look-up
    took 43 s for 500,000 images on a loaded 2-core machine; ``benchmarks/data_scale.py``).

    Args:
        unlabeled (Sequence[str]): Unlabeled image paths.
        val (Sequence[str]): Val image paths.

    Returns:
        int: The number of unlabeled images found in the val set.
    """
    val_files, sizes = set(), {}
    for path in val:
        st = _stat(path)
        if st is not None:
            val_files.add((st.st_dev, st.st_ino))
            sizes.setdefault(st.st_size, []).append(path)
    val_keys, hashed = set(), set()
    count = 0
    stats = map_files(_stat, unlabeled, 'looking for val images among the unlabeled images')
    for path, st in zip(unlabeled, stats):
        if st is None or st.st_size not in sizes:
            continue
        if (st.st_dev, st.st_ino) in val_files:
            count += 1
            continue
        if st.st_size not in hashed:  # the val images of this size, hashed once
            hashed.add(st.st_size)
            for q in sizes[st.st_size]:
                try:
                    val_keys.add(_content_key(q))
                except OSError:  # an unreadable val image: the others still count
                    continue
        try:
            count += _content_key(path) in val_keys
        except OSError:
            continue
    return count
