"""Images without labels, for distillation: listing, a COCO json of images only, checks.

The output-distillation loss needs no labels, so a student can learn from the teacher on
images nobody annotated (``tools/train.py --unlabeled``). Sources are folders (searched
recursively), globs (``'footage/**/*.jpg'``), ``.txt`` lists of image paths or single
image files. The COCO json they become has images and categories but no annotations,
and is cached by content like :func:`~mmkd_yolo.datasets.coco_json_for`'s.
"""
from __future__ import annotations

import glob
import logging
import hashlib
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log

from ..errors import DataError
from ..fileio import AtomicLocalBackend
from ..fileio import cache_dir as default_cache_dir
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


def _fingerprint(names: Sequence[str], images: List[str]) -> str:
    h = hashlib.sha1(json.dumps([_CACHE_VERSION, 'unlabeled', list(names)]).encode())
    for path in images:
        h.update(os.fsencode(path))
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            raise DataError(f'{path!r} is listed as an unlabeled image but cannot be read: '
                            'fix the image list or restore the file.') from None
        h.update(f'|{st.st_size}|{st.st_mtime_ns}|'.encode())
    return h.hexdigest()[:16]


def unlabeled_coco(images: List[str], names: Sequence[str]) -> Dict:
    """COCO dict of ``images`` (no annotations); unreadable images are left out, named.

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
    for path in images:
        try:
            width, height = image_size(path)
        except DataError as e:
            skipped.append((path, str(e)))
            continue
        coco['images'].append(dict(id=len(coco['images']), file_name=path, width=width,
                                   height=height))
    if not coco['images']:
        raise DataError(f'none of the {len(images)} unlabeled images can be read as an '
                        f'image; the first: {skipped[0][1]}')
    coco['info'] = dict(skipped=[p for p, _ in skipped])
    return coco


def unlabeled_coco_json(sources: Sequence[str], names: Sequence[str],
                        cache_dir: Optional[str] = None) -> Tuple[str, List[str]]:
    """Path of the (cached) COCO json of the unlabeled images, and the images in it.

    Images that cannot be read are left out with a warning that names them (their
    number and the first five), so nothing is dropped unsaid.

    Args:
        sources (Sequence[str]): See :func:`list_unlabeled_images`.
        names (Sequence[str]): Class names of the labeled set.
        cache_dir (str, optional): Defaults to the project's cache folder.

    Returns:
        tuple[str, list[str]]: The json's path and the images it lists.
    """
    images = list_unlabeled_images(sources)
    name = f'unlabeled-{_fingerprint(names, images)}.json'
    out = (osp.join(cache_dir, 'datasets', name) if cache_dir else
           default_cache_dir('datasets', name))
    if osp.isfile(out):
        with open(out) as f:
            coco = json.load(f)
    else:
        coco = unlabeled_coco(images, names)
        AtomicLocalBackend().put(json.dumps(coco).encode(), out)
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


def count_overlap(unlabeled: Sequence[str], val: Sequence[str]) -> int:
    """How many unlabeled images are also val images: the same file, or a copy (same size
    and first 64 KiB). Distilling on val images inflates the val mAP.

    Args:
        unlabeled (Sequence[str]): Unlabeled image paths.
        val (Sequence[str]): Val image paths.

    Returns:
        int: The number of unlabeled images found in the val set.
    """
    val_real = {osp.realpath(p) for p in val}
    sizes: Dict[int, List[str]] = {}
    for p in val:
        try:
            sizes.setdefault(os.path.getsize(p), []).append(p)
        except OSError:
            continue
    val_keys, hashed = set(), set()
    count = 0
    for p in unlabeled:
        if osp.realpath(p) in val_real:
            count += 1
            continue
        try:
            size = os.path.getsize(p)
            if size not in sizes:
                continue
            if size not in hashed:  # the val images of this size, hashed once
                hashed.add(size)
                for q in sizes[size]:
                    try:
                        val_keys.add(_content_key(q))
                    except OSError:  # an unreadable val image: the others still count
                        continue
            if _content_key(p) in val_keys:
                count += 1
        except OSError:
            continue
    return count
