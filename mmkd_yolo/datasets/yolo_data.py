"""Ultralytics ``data.yaml`` datasets (YOLO txt labels) as COCO json for mmyolo/mmdet.

(Pointing a config at such a dataset is :func:`mmkd_yolo.apis.apply_data_yaml`.)

The json files are cached (``$MMKD_CACHE/datasets``), keyed by the image list, each
image's size in bytes and modification time, and the label files' contents, so they are
rebuilt when a label or an image changes.

Real-data rules:

* image sizes are those the decoder (``mmcv.imread``/``imfrombytes``, cv2) sees: it applies
  the EXIF orientation, so a phone photo stored sideways with orientation 5-8 has width and
  height swapped; YOLO labels are relative to that displayed image (as in Ultralytics);
* a line ``class cx cy w h`` is a box; a line ``class x1 y1 x2 y2 x3 y3 ...`` (a polygon,
  Ultralytics' segment format) is read as its bounding box;
* an image without a label file is a background image: kept, with no boxes;
* a label file without an image is reported (count and first names) and skipped;
* label files and image lists are UTF-8 text (a leading BOM is ignored; ``\\n``,
  ``\\r\\n`` and ``\\r`` end lines); other bytes are a DataError naming file and offset;
* a data.yaml entry of the wrong type (``nc`` not a whole number in 1..``MAX_CLASSES``,
  ``names`` not a list or ``{id: name}`` of scalar names, ``path``/``train``/``val`` not
  text) is a DataError naming the entry;
* a malformed line (wrong field count, non-numeric or non-finite, coordinates outside
  [0, 1], class id out of range) is a :class:`~mmkd_yolo.errors.DataError` naming file and
  line.
"""
from __future__ import annotations

import glob
import math
import os
import os.path as osp
import reprlib
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

import yaml
from mmengine.logging import MMLogger, print_log
from PIL import Image

from ..errors import DataError
from .json_cache import cached_json, fingerprint, map_files

IMG_EXTS = ('.bmp', '.dng', '.jpeg', '.jpg', '.mpo', '.png', '.tif', '.tiff', '.webp')
_EPS = 1e-6
#: The most classes a data file may declare: nc also sizes the class names, the COCO json
#: and the head, so a larger one is a typo that would only exhaust memory.
MAX_CLASSES = 100_000
#: libyaml's safe loader where PyYAML has it: it refuses nesting deeper than 1000 levels,
#: where the pure-Python loader recurses once per level, and mmrazor raises the recursion
#: limit to 2^20 on import: a data.yaml of 80 kB of "[" then took 150 s to refuse.
_YAML_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
#: How values from a user's file are shown in messages: bounded in depth and length.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 80, 80
# Part of the cache key: bump it when the conversion itself changes, so that json files
# written by an older rule (e.g. sizes without EXIF orientation) are not reused.
_CACHE_VERSION = 2
# EXIF tag 274; its values 5-8 (transpose, rotate 90, transverse, rotate 270) make the
# displayed image, and so the decoded array, transposed relative to the stored pixels.
_ORIENTATION_TAG = 274
_TRANSPOSING = (5, 6, 7, 8)
# Formats whose EXIF orientation every cv2 that mmcv supports applies at decode time; for
# any other format with a transposing orientation the decoder itself is asked (rare).
_HEADER_FORMATS = ('JPEG', 'MPO')


def load_data_yaml(path: str) -> Dict:
    """Read an Ultralytics data file.

    Args:
        path (str): ``data.yaml`` with ``path`` (optional root), ``train``, ``val`` (a
            folder, a ``.txt`` list of images, or a list of those) and ``names`` (list or
            ``{id: name}``) and/or ``nc``; optionally ``unlabeled`` (images without
            labels for distillation, same forms, or globs).

    Returns:
        dict: ``root``, ``train``, ``val`` and ``unlabeled`` (lists of sources,
        absolute; ``unlabeled`` may be empty), ``names`` (list of str) and ``nc``.

    Raises:
        DataError: The file is missing, not YAML, or an entry is missing or of the wrong
            type (the message names the entry and the form it takes).
    """
    if not osp.isfile(path):
        raise DataError(f'data file {path!r} does not exist (--data).')
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        # bytes, not text: PyYAML then detects UTF-8/UTF-16 by BOM and reports undecodable
        # bytes as a YAMLError. ValueError/OverflowError: tagged scalars it cannot build
        # (``!!timestamp 2024-99-99``); RecursionError: deep nesting (pure-Python loader).
        data = yaml.load(raw, Loader=_YAML_LOADER)
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as e:
        raise DataError(f'{path!r} is not valid YAML (an Ultralytics data.yaml is UTF-8 '
                        f'text with path, train, val, names): {_first_line(e)}') from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DataError(f'{path!r} holds a {type(data).__name__}, not a mapping: write it as '
                        'Ultralytics does, one "key: value" per line (path, train, val, '
                        'names or nc).')
    for key in ('train', 'val'):
        if key not in data:
            raise DataError(f'{path!r} has no {key!r} entry (Ultralytics form: path, train, '
                            'val, names or nc).')
    root = data.get('path')
    if root is None or root == '':
        root = '.'
    if not isinstance(root, str):
        raise DataError(f'{path!r}: path is {_shown(root)}, not a folder name: give the '
                        'dataset root as text (quote it if YAML reads it as a number).')
    if not osp.isabs(root):
        root = osp.normpath(osp.join(osp.dirname(osp.abspath(path)), root))
    names = _class_names(path, data.get('names'))
    nc = data.get('nc')
    if nc is None:  # absent or empty ("nc:"): the names say it
        nc = len(names) or None
    if nc is None:
        raise DataError(f'{path!r} has neither names nor nc.')
    if isinstance(nc, float) and nc.is_integer():
        nc = int(nc)
    # bool is an int to Python, but "nc: yes" is no class count
    if not isinstance(nc, int) or isinstance(nc, bool) or not 0 < nc <= MAX_CLASSES:
        raise DataError(f'{path!r}: nc is {_shown(nc)}, not a class count: give a whole '
                        f'number from 1 to {MAX_CLASSES}, or leave nc out and list names.')
    names = names or [f'class{i}' for i in range(nc)]
    if len(names) != nc:
        raise DataError(f'{path!r}: nc={nc} but {len(names)} names are listed.')

    def sources(key: str) -> List[str]:
        value = data[key]
        items = value if isinstance(value, (list, tuple)) else [value]
        bad = [item for item in items if not isinstance(item, str) or not item]
        if bad or not items:
            raise DataError(f'{path!r}: {key} is {_shown(value)}; it takes a folder of '
                            'images, a .txt list of images, or a list of those (text, '
                            'relative to path).')
        return [item if osp.isabs(item) else osp.join(root, item) for item in items]

    unlabeled = sources('unlabeled') if data.get('unlabeled') is not None else []
    return dict(root=root, train=sources('train'), val=sources('val'), names=names, nc=nc,
                unlabeled=unlabeled)


def _class_names(path: str, names) -> List[str]:
    """``names`` of a data file as a list of str ([] if absent), or a DataError."""
    if names is None:
        return []
    if isinstance(names, dict):
        # Ultralytics' form {0: cat, 1: dog} (or "0": cat, as Ultralytics reads it too):
        # the ids must be exactly 0..n-1
        def class_id(key):
            if isinstance(key, str) and key.isascii() and key.isdigit():
                return int(key)
            return key if isinstance(key, int) and not isinstance(key, bool) else None
        ids = {class_id(k): v for k, v in names.items()}
        if len(ids) != len(names) or set(ids) != set(range(len(ids))):
            raise DataError(f'{path!r}: names is a mapping whose keys are not the class ids '
                            f'0..{len(names) - 1} ({_shown(list(names))}): write it as '
                            '{0: cat, 1: dog} or as a list [cat, dog].')
        names = [ids[i] for i in range(len(ids))]
    if not isinstance(names, (list, tuple)):
        raise DataError(f'{path!r}: names is {_shown(names)}; give a list [cat, dog] or a '
                        'mapping {0: cat, 1: dog}.')
    # A name is one scalar; nested lists (or a YAML alias bomb) are no class names.
    bad = [n for n in names if not isinstance(n, (str, int, float))]
    if bad:
        raise DataError(f'{path!r}: names holds {_shown(bad[0])}, not a class name: each '
                        'name is one word or number.')
    if len(names) > MAX_CLASSES:
        raise DataError(f'{path!r} lists {len(names)} names; at most {MAX_CLASSES} classes '
                        'are supported.')
    return [str(n) for n in names]


def _shown(value) -> str:
    """A short repr of a value from a user's file: bounded even for an alias bomb."""
    return f'{type(value).__name__} {_REPR.repr(value)}'


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return f'{type(e).__name__}: {" ".join(lines[:4])[:300]}'


def _read_text(path: str, what: str) -> str:
    """A label file or image list as text; undecodable bytes are a DataError."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f'{what} {path!r} cannot be read ({e}).') from None
    try:
        # utf-8-sig: a BOM written by Windows editors is not part of the first field
        return raw.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise DataError(f'{what} {path!r} is not UTF-8 text (byte {raw[e.start]:#04x} at '
                        f'offset {e.start}): save it as plain UTF-8 text.') from None


def _quoted(line: str, limit: int = 120) -> str:
    """A label line for a message (a polygon line can be thousands of fields long)."""
    line = line.strip()
    return repr(line) if len(line) <= limit else repr(line[:limit]) + f'... ({len(line)} chars)'


def _lines(text: str) -> List[str]:
    """Lines as a text file gives them (universal newlines): \\n, \\r\\n or \\r."""
    return text.replace('\r\n', '\n').replace('\r', '\n').split('\n')


def list_images(sources: Sequence[str]) -> List[str]:
    """Image files of folders and/or ``.txt`` image lists, sorted, absolute."""
    images: List[str] = []
    for src in sources:
        if osp.isdir(src):
            # escaped: a folder named like "data[1]" is a name, not a glob pattern
            images += [p for p in glob.glob(osp.join(glob.escape(src), '**', '*'),
                                            recursive=True)
                       if p.lower().endswith(IMG_EXTS)]
        elif osp.isfile(src) and src.endswith('.txt'):
            base = osp.dirname(src)
            for line in _lines(_read_text(src, 'image list')):
                line = line.strip()
                if line:
                    images.append(line if osp.isabs(line) else osp.normpath(
                        osp.join(base, line)))
        else:
            raise DataError(f'image source {src!r} is neither a folder nor a .txt list.')
    return sorted(osp.abspath(p) for p in images)


def label_path(image_path: str) -> str:
    """Ultralytics' rule: the last ``/images/`` becomes ``/labels/``, extension ``.txt``."""
    sa, sb = f'{os.sep}images{os.sep}', f'{os.sep}labels{os.sep}'
    head, sep, tail = image_path.rpartition(sa)
    if not sep:
        raise DataError(f'{image_path!r} has no /images/ folder in its path: YOLO labels are '
                        'found by replacing /images/ with /labels/.')
    return osp.splitext(head + sb + tail)[0] + '.txt'


def image_size(path: str) -> Tuple[int, int]:
    """``(width, height)`` of an image as the training decoder returns it.

    mmdet's ``LoadImageFromFile`` decodes with ``mmcv.imfrombytes`` (cv2, ``IMREAD_COLOR``),
    which applies the EXIF orientation; PIL's ``size`` is that of the stored pixels. So
    the size comes from PIL's header read (no decoding) with width and height swapped for
    a transposing orientation, as Ultralytics' ``exif_size`` does. Only where that rule is
    not known to match the decoder (a non-JPEG file with such an orientation, unreadable
    EXIF) is the image decoded with ``mmcv.imread`` to ask it.

    Args:
        path (str): the image file.

    Returns:
        tuple[int, int]: width and height in pixels, as the decoded array has them.
    """
    try:
        with Image.open(path) as im:
            width, height = im.size
            fmt = im.format
            try:
                orientation = im.getexif().get(_ORIENTATION_TAG, 1)
            except Exception:  # a broken EXIF block: let the decoder decide below
                orientation = None
    except Exception as e:  # noqa: BLE001  PIL raises many types for a corrupt header
        # (OSError, SyntaxError, struct.error, DecompressionBombError for a header that
        # declares more pixels than PIL will decode, ...)
        raise DataError(f'{path!r} cannot be read as an image ({_first_line(e)}): replace or '
                        'remove it together with its label file.') from None
    if orientation is not None:
        if orientation not in _TRANSPOSING:
            return width, height
        if fmt in _HEADER_FORMATS:
            return height, width
    import mmcv  # only for the rare files the header rule does not cover
    img = mmcv.imread(path)
    if img is None:
        raise DataError(f'{path!r} cannot be decoded by mmcv.imread (cv2), so training could '
                        'not load it: convert it to JPEG or PNG.')
    return img.shape[1], img.shape[0]


def _parse_labels(path: str, nc: int, width: int, height: int) -> List[Dict]:
    anns = []
    for lineno, line in enumerate(_lines(_read_text(path, 'label file')), 1):
        fields = line.split()
        if not fields:
            continue
        where = f'{path}, line {lineno}'
        # 5 fields: a box; an odd number >= 7: a polygon of >= 3 (x, y) points.
        n = len(fields)
        if n != 5 and (n < 7 or n % 2 == 0):
            raise DataError(f'{where}: {n} fields, expected 5 (class cx cy w h) or an '
                            'odd number >= 7 (class x1 y1 x2 y2 x3 y3 ..., a polygon): '
                            f'{_quoted(line)}')
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise DataError(f'{where}: non-numeric value in {_quoted(line)}') from None
        if not all(math.isfinite(v) for v in values):
            raise DataError(f'{where}: NaN or infinite value in {_quoted(line)}: '
                            'labels must be finite numbers')
        cls_f, coords = values[0], values[1:]
        if cls_f != int(cls_f) or not 0 <= cls_f < nc:
            raise DataError(f'{where}: class id {fields[0]} is not an integer in '
                            f'[0, {nc - 1}] (nc={nc})')
        if not all(-_EPS <= v <= 1 + _EPS for v in coords):
            raise DataError(f'{where}: coordinates must be normalised to [0, 1], got '
                            f'{_quoted(line)}')
        if n == 5:
            cx, cy, w, h = coords
            x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        else:  # Ultralytics' segments2boxes: the polygon's bounding box
            xs, ys = coords[0::2], coords[1::2]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        x0 = max(0.0, x0 * width)
        y0 = max(0.0, y0 * height)
        x1 = min(float(width), x1 * width)
        y1 = min(float(height), y1 * height)
        bw, bh = x1 - x0, y1 - y0
        anns.append(dict(category_id=int(cls_f) + 1, bbox=[x0, y0, bw, bh],
                         area=bw * bh, iscrowd=0))
    return anns


def _orphan_labels(images: List[str], sources: Sequence[str]) -> List[str]:
    have = {label_path(p) for p in images}
    orphans = []
    for src in sources:
        if osp.isdir(src):
            try:
                label_dir = osp.dirname(label_path(osp.join(src, 'x.jpg')))
            except DataError:
                continue
            orphans += [p for p in glob.glob(osp.join(glob.escape(label_dir), '**', '*.txt'),
                                             recursive=True)
                        if osp.abspath(p) not in have]
    return sorted(orphans)


def _read_image_and_labels(path: str, nc: int) -> Tuple[int, int, Optional[List[Dict]]]:
    """An image's decoded size and its boxes (None: no label file, a background image)."""
    width, height = image_size(path)
    lbl = label_path(path)
    return width, height, (_parse_labels(lbl, nc, width, height) if osp.isfile(lbl) else None)


def yolo_split_to_coco(sources: Sequence[str], names: Sequence[str],
                       logger: Optional[MMLogger] = None,
                       images: Optional[List[str]] = None) -> Dict:
    """COCO dict for one split (images with absolute ``file_name``s, category ids 1..nc).

    ``images`` is :func:`list_images` of ``sources`` when the caller has it already.
    Images and label files are read by a few threads, with a progress line for a large
    split (:func:`~mmkd_yolo.datasets.json_cache.map_files`).
    """
    images = list_images(sources) if images is None else images
    if not images:
        raise DataError(f'no images found in {list(sources)}.')
    coco = dict(images=[], annotations=[],
                categories=[dict(id=i + 1, name=n) for i, n in enumerate(names)])
    background = 0
    read = map_files(partial(_read_image_and_labels, nc=len(names)), images,
                     f'converting the YOLO labels of {list(sources)} to COCO json')
    for img_id, (path, (width, height, anns)) in enumerate(zip(images, read)):
        coco['images'].append(dict(id=img_id, file_name=path, width=width, height=height))
        if anns is None:
            background += 1
            continue
        for ann in anns:
            ann.update(id=len(coco['annotations']) + 1, image_id=img_id)
            coco['annotations'].append(ann)
    orphans = _orphan_labels(images, sources)
    log = (lambda m: print_log(m, logger or 'current'))
    log(f'{len(images)} images ({background} without a label file: kept as background), '
        f'{len(coco["annotations"])} boxes from {list(sources)}')
    if orphans:
        first = ', '.join(osp.basename(p) for p in orphans[:5])
        log(f'{len(orphans)} label files have no image and were skipped: {first}'
            + (' ...' if len(orphans) > 5 else ''))
    coco['info'] = dict(orphan_labels=len(orphans), background_images=background)
    return coco


def coco_json_for(sources: Sequence[str], names: Sequence[str],
                  cache_dir: Optional[str] = None) -> str:
    """Path of the (cached) COCO json of a split; converted when a label or image changed.

    Converted by one process at a time: the others wait and read its file
    (:func:`~mmkd_yolo.datasets.json_cache.cached_json`).

    Args:
        sources (Sequence[str]): Folders and/or ``.txt`` image lists of the split.
        names (Sequence[str]): Class names.
        cache_dir (str, optional): Defaults to the project's cache folder.

    Returns:
        str: The json's path.
    """
    images = list_images(sources)
    key = fingerprint([_CACHE_VERSION, list(sources), list(names)], images, 'an image',
                      label_path)
    return cached_json(f'coco-{key}.json',
                       partial(yolo_split_to_coco, sources, names, images=images),
                       cache_dir)[0]
