"""Start-up cost of a large data set: first conversion, cached start, the training dataset.

    python benchmarks/data_scale.py [--sizes 10000 100000 100000+500000] [--work DIR]

Each size is a number of labeled images, optionally ``+`` a number of unlabeled ones (given
as a ``.txt`` list, as ``--unlabeled frames.txt``). The data are generated: 32x32 JPEGs
(a few distinct files, hardlinked to reach the count), 7 boxes in every label file (the
ratio of the hand measurement: 140,000 boxes on 20,000 images), a val split of a tenth of
the labeled images (at most 1,000). For each size, in fresh processes:

* ``first start``: what ``tools/train.py`` does before the Runner
  (:func:`mmkd_yolo.apis.prepare_train_cfg` with ``--data`` and ``--unlabeled``) on an
  empty cache: listing, fingerprinting, converting the labels to COCO json, reading the
  unlabeled images' sizes, the val-overlap check;
* ``cached start``: the same again, the json files cached;
* ``training dataset``: building the training set of that config (mmyolo's
  ``YOLOv5CocoDataset``, with the unlabeled set a ``ConcatDataset``) and its sampler, as
  the Runner does at the first epoch.

Reported: the seconds of each step, not counting the imports (their own row; the
starts include reading the config), and the peak resident memory of its process (the
imports alone: the ``imports`` row). The files of one set are hardlinks of a few, so the
headers are read from the page cache: a first read from a cold disk takes longer
(``mmkd_yolo.datasets.json_cache.READ_THREADS`` says by how much).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'distill', 'yolov5',
                  'kd-out_yolov5_s-to-n-v61_syncbn_fast_8xb16-300e_coco.py')
#: Distinct image files behind the hardlinks (labeled / unlabeled ones differ in size, so
#: the val-overlap check finds nothing, as on real data).
DISTINCT = 8
BOXES = 7


def parse_size(text: str) -> Tuple[int, int]:
    """``'100000+500000'`` -> (100000, 500000); ``'1e4'`` -> (10000, 0)."""
    labeled, _, unlabeled = text.partition('+')
    return int(float(labeled)), int(float(unlabeled or 0))


def _jpegs(folder: str, n: int, height: int, seed: int) -> List[str]:
    import cv2
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = osp.join(folder, f'src{i}.jpg')
        cv2.imwrite(path, rng.integers(0, 255, (height, 32, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def _link_images(sources: List[str], folder: str, n: int, prefix: str) -> List[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        path = osp.join(folder, f'{prefix}{i:07d}.jpg')
        if not osp.exists(path):
            os.link(sources[i % len(sources)], path)
        paths.append(path)
    return paths


def _write_labels(folder: str, n: int, prefix: str) -> None:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(n)
    boxes = rng.uniform(0.1, 0.3, (n, BOXES, 2))
    centres = rng.uniform(0.35, 0.65, (n, BOXES, 2))
    classes = rng.integers(0, 3, (n, BOXES))
    for i in range(n):
        lines = ''.join(f'{classes[i, j]} {centres[i, j, 0]:.4f} {centres[i, j, 1]:.4f} '
                        f'{boxes[i, j, 0]:.4f} {boxes[i, j, 1]:.4f}\n' for j in range(BOXES))
        with open(osp.join(folder, f'{prefix}{i:07d}.txt'), 'w') as f:
            f.write(lines)


def make_labeled(root: str, n: int) -> str:
    """A data.yaml of ``n`` train images (and a val split); returns its path."""
    data = osp.join(root, 'data.yaml')
    if osp.isfile(data):
        return data
    sources = _jpegs(osp.join(root, 'src'), DISTINCT, 32, seed=0)
    n_val = min(1000, max(1, n // 10))
    for split, count in (('train', n), ('val', n_val)):
        _link_images(sources, osp.join(root, 'images', split), count, split)
        _write_labels(osp.join(root, 'labels', split), count, split)
    with open(data + '.tmp', 'w') as f:
        f.write(f'path: {root}\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n')
    os.replace(data + '.tmp', data)
    return data


def make_unlabeled(root: str, n: int) -> str:
    """A ``.txt`` list of ``n`` unlabeled images; returns its path."""
    listing = osp.join(root, f'unlabeled-{n}.txt')
    if osp.isfile(listing):
        return listing
    sources = _jpegs(osp.join(root, 'src'), DISTINCT, 40, seed=1)
    paths = _link_images(sources, osp.join(root, 'frames'), n, 'frame')
    with open(listing + '.tmp', 'w') as f:
        f.write('\n'.join(paths) + '\n')
    os.replace(listing + '.tmp', listing)
    return listing


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage(name: str, data: Optional[str], unlabeled: Optional[str]) -> Dict[str, float]:
    """One step, in this process (a child of :func:`main`)."""
    start = time.perf_counter()
    from mmkd_yolo.apis import prepare_train_cfg
    if name == 'imports':
        return dict(seconds=time.perf_counter() - start, peak_mb=peak_mb())
    start = time.perf_counter()
    cfg = prepare_train_cfg(CONFIG, data=data, unlabeled=[unlabeled] if unlabeled else None)
    if name == 'start':
        return dict(seconds=time.perf_counter() - start, peak_mb=peak_mb())
    from mmengine.registry import DATA_SAMPLERS, DATASETS, init_default_scope
    init_default_scope('mmyolo')
    start = time.perf_counter()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    len(DATA_SAMPLERS.build(dict(cfg.train_dataloader.sampler, dataset=dataset, seed=0)))
    return dict(seconds=time.perf_counter() - start, peak_mb=peak_mb())


def run_stage(name: str, cache: str, data: Optional[str] = None,
              unlabeled: Optional[str] = None) -> Dict[str, float]:
    cmd = [sys.executable, __file__, '--stage', name]
    cmd += ['--data', data] if data else []
    cmd += ['--unlabeled', unlabeled] if unlabeled else []
    env = dict(os.environ, MMKD_CACHE=cache, PYTHONPATH=REPO)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f'{name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}')
    return json.loads([line for line in out.stdout.splitlines() if line.startswith('{')][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', default=['10000', '100000', '100000+500000'],
                        help='labeled[+unlabeled] image counts, e.g. 2000 1e4+5e4')
    parser.add_argument('--work', help='folder for the generated data (kept: a second run '
                        'reuses it); default a temporary folder, removed at the end')
    parser.add_argument('--stage', help=argparse.SUPPRESS)
    parser.add_argument('--data', help=argparse.SUPPRESS)
    parser.add_argument('--unlabeled', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.data, args.unlabeled)))
        return
    work = args.work or tempfile.mkdtemp(prefix='data_scale-')
    try:
        rows = []
        base = run_stage('imports', osp.join(work, 'cache-imports'))
        rows.append(f'| (none) | imports (`mmkd_yolo.apis`) | {base["seconds"]:.1f} s | '
                    f'{base["peak_mb"]:.0f} MB |')
        for text in args.sizes:
            labeled, unlabeled = parse_size(text)
            start = time.perf_counter()
            data = make_labeled(osp.join(work, f'labeled-{labeled}'), labeled)
            listing = make_unlabeled(osp.join(work, 'unlabeled'), unlabeled) if unlabeled \
                else None
            made = time.perf_counter() - start
            cache = osp.join(work, f'cache-{text}')
            shutil.rmtree(cache, ignore_errors=True)
            what = f'{labeled:,} labeled' + (f' + {unlabeled:,} unlabeled' if unlabeled else '')
            print(f'{what}: data generated in {made:.0f} s', flush=True)
            for step, name in (('first start', 'start'), ('cached start', 'start'),
                               ('training dataset', 'dataset')):
                result = run_stage(name, cache, data, listing)
                rows.append(f'| {what} | {step} | {result["seconds"]:.1f} s | '
                            f'{result["peak_mb"]:.0f} MB |')
                print(rows[-1], flush=True)
        print('\n| data set | step | time | peak memory |\n|---|---|---:|---:|')
        print('\n'.join(rows))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
