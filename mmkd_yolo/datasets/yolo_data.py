"""Ultralytics ``data.yaml`` datasets (YOLO txt labels) as COCO json for mmyolo/mmdet.

(Pointing a config at such a dataset is :func:`mmkd_yolo.apis.apply_data_yaml`.)

The json files are cached (``$MMKD_CACHE/datasets``), keyed by the image list and the
label files' contents, so they are rebuilt exactly when labels change.

Real-data rules:

* an image without a label file is a background image: kept, with no boxes;
* a label file without an image is reported (count and first names) and skipped;
* a malformed line (wrong field count, non-numeric, coordinates outside [0, 1], class id
  out of range) is a :class:`~mmkd_yolo.errors.DataError` naming file and line.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import yaml
from mmengine.logging import MMLogger, print_log
from PIL import Image

from ..errors import DataError
from ..fileio import AtomicLocalBackend
from ..fileio import cache_dir as default_cache_dir

IMG_EXTS = ('.bmp', '.dng', '.jpeg', '.jpg', '.mpo', '.png', '.tif', '.tiff', '.webp')
_EPS = 1e-6


def load_data_yaml(path: str) -> Dict:
    """Read an Ultralytics data file.

    Args:
        path (str): ``data.yaml`` with ``path`` (optional root), ``train``, ``val`` (a
            folder, a ``.txt`` list of images, or a list of those) and ``names`` (list or
            ``{id: name}``) and/or ``nc``.

    Returns:
        dict: ``root``, ``train`` and ``val`` (lists of sources, absolute), ``names``
        (list of str) and ``nc``.
    """
    if not osp.isfile(path):
        raise DataError(f'data file {path!r} does not exist (--data).')
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise DataError(f'{path!r} is not valid YAML: {e}') from None
    for key in ('train', 'val'):
        if key not in data:
            raise DataError(f'{path!r} has no {key!r} entry (Ultralytics form: path, train, '
                            'val, names or nc).')
    root = data.get('path') or '.'
    if not osp.isabs(root):
        root = osp.normpath(osp.join(osp.dirname(osp.abspath(path)), root))
    names = data.get('names')
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    nc = data.get('nc', len(names) if names else None)
    if nc is None:
        raise DataError(f'{path!r} has neither names nor nc.')
    names = [str(n) for n in names] if names else [f'class{i}' for i in range(int(nc))]
    if len(names) != int(nc):
        raise DataError(f'{path!r}: nc={nc} but {len(names)} names are listed.')

    def sources(value):
        items = value if isinstance(value, (list, tuple)) else [value]
        return [item if osp.isabs(item) else osp.join(root, item) for item in items]

    return dict(root=root, train=sources(data['train']), val=sources(data['val']),
                names=names, nc=int(nc))


def list_images(sources: Sequence[str]) -> List[str]:
    """Image files of folders and/or ``.txt`` image lists, sorted, absolute."""
    images: List[str] = []
    for src in sources:
        if osp.isdir(src):
            images += [p for p in glob.glob(osp.join(src, '**', '*'), recursive=True)
                       if p.lower().endswith(IMG_EXTS)]
        elif osp.isfile(src) and src.endswith('.txt'):
            base = osp.dirname(src)
            with open(src) as f:
                for line in f:
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


def _parse_labels(path: str, nc: int, width: int, height: int) -> List[Dict]:
    anns = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f'{path}, line {lineno}'
            if len(fields) != 5:
                raise DataError(f'{where}: {len(fields)} fields, expected 5 '
                                f'(class cx cy w h): {line.strip()!r}')
            try:
                cls_f, cx, cy, w, h = (float(v) for v in fields)
            except ValueError:
                raise DataError(f'{where}: non-numeric value in {line.strip()!r}') from None
            if cls_f != int(cls_f) or not 0 <= cls_f < nc:
                raise DataError(f'{where}: class id {fields[0]} is not an integer in '
                                f'[0, {nc - 1}] (nc={nc})')
            if not all(-_EPS <= v <= 1 + _EPS for v in (cx, cy, w, h)):
                raise DataError(f'{where}: coordinates must be normalised to [0, 1], got '
                                f'{line.strip()!r}')
            x0 = max(0.0, (cx - w / 2) * width)
            y0 = max(0.0, (cy - h / 2) * height)
            x1 = min(float(width), (cx + w / 2) * width)
            y1 = min(float(height), (cy + h / 2) * height)
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
            orphans += [p for p in glob.glob(osp.join(label_dir, '**', '*.txt'), recursive=True)
                        if osp.abspath(p) not in have]
    return sorted(orphans)


def yolo_split_to_coco(sources: Sequence[str], names: Sequence[str],
                       logger: Optional[MMLogger] = None,
                       images: Optional[List[str]] = None) -> Dict:
    """COCO dict for one split (images with absolute ``file_name``s, category ids 1..nc).

    ``images`` is :func:`list_images` of ``sources`` when the caller has it already.
    """
    images = list_images(sources) if images is None else images
    if not images:
        raise DataError(f'no images found in {list(sources)}.')
    coco = dict(images=[], annotations=[],
                categories=[dict(id=i + 1, name=n) for i, n in enumerate(names)])
    background = 0
    for img_id, path in enumerate(images):
        with Image.open(path) as im:
            width, height = im.size
        coco['images'].append(dict(id=img_id, file_name=path, width=width, height=height))
        lbl = label_path(path)
        if not osp.isfile(lbl):
            background += 1
            continue
        for ann in _parse_labels(lbl, len(names), width, height):
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


def _fingerprint(sources: Sequence[str], names: Sequence[str], images: List[str]) -> str:
    h = hashlib.sha1(json.dumps([list(sources), list(names)]).encode())
    for path in images:
        h.update(path.encode())
        lbl = label_path(path)
        if osp.isfile(lbl):
            with open(lbl, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()[:16]


def coco_json_for(sources: Sequence[str], names: Sequence[str],
                  cache_dir: Optional[str] = None) -> str:
    """Path of the (cached) COCO json of a split; converted when labels changed.

    ``cache_dir`` defaults to the project's cache folder.
    """
    images = list_images(sources)
    name = f'coco-{_fingerprint(sources, names, images)}.json'
    out = (osp.join(cache_dir, 'datasets', name) if cache_dir else
           default_cache_dir('datasets', name))
    if not osp.isfile(out):
        coco = yolo_split_to_coco(sources, names, images=images)
        AtomicLocalBackend().put(json.dumps(coco).encode(), out)
    return out
