"""tools/analysis_tools/compare_checkpoints.py and tools/test.py's new outputs, end to end.

Two checkpoints on val labels that are the first one's own detections
(tests/helpers/self_labels.py): the first scores ~1; the second is the same network with
the class outputs of one labelled and one unlabelled class swapped, so it loses exactly
that class. The report's numbers must be tools/test.py's for each checkpoint."""
import glob
import json
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from mmkd_yolo.analysis.grid import PANEL
from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.registry import MODELS

from ..conftest import REPO, STUDENT_N
from ..helpers.self_labels import own_detections, relabel_coco, well_posed_head
from .test_train import run_tool

pytestmark = pytest.mark.slow  # subprocesses

COMPARE = osp.join(REPO, 'tools', 'analysis_tools', 'compare_checkpoints.py')
TEST = osp.join(REPO, 'tools', 'test.py')
OPTS = ['--cfg-options', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False']


def class_per_prior(model):
    """:func:`well_posed_head`'s model, each anchor of each level predicting one class
    (class logits 0 for it, -4 for the others) and every objectness bias alike, so that
    its top detections are of several classes."""
    head = well_posed_head(model).bbox_head.head_module
    with torch.no_grad():
        for level, conv in enumerate(head.convs_pred):
            for prior in range(head.num_base_priors):
                first = prior * (5 + head.num_classes) + 5
                conv.bias[first - 1] = -1.0
                conv.bias[first:first + head.num_classes] = -4.0
                conv.bias[first + (3 * level + prior) % head.num_classes] = 0.0
    return model


def swap_classes(state, head, a, b):
    """``state`` with the head's outputs of classes ``a`` and ``b`` exchanged."""
    state = {k: v.clone() for k, v in state.items()}
    per_prior = 5 + head.num_classes
    for level in range(len(head.convs_pred)):
        for name in ('weight', 'bias'):
            t = state[f'bbox_head.head_module.convs_pred.{level}.{name}']
            for prior in range(head.num_base_priors):
                i, j = prior * per_prior + 5 + a, prior * per_prior + 5 + b
                t[[i, j]] = t[[j, i]]
    return state


@pytest.fixture(scope='module')
def setup(shapes_dir, tmp_path_factory):
    """``a.pth``, ``b.pth`` (a with classes 0 and 2 swapped) and a folder whose val labels
    are a's 16 best detections (two classes here: square and circle)."""
    tmp = tmp_path_factory.mktemp('compare')
    torch.manual_seed(0)
    model = class_per_prior(MODELS.build(load_detector_cfg(STUDENT_N)))
    state = model.state_dict()
    src = shapes_dir / 'data' / 'shapes'
    dst = tmp / 'labelled' / 'data' / 'shapes'
    (dst / 'annotations').mkdir(parents=True)
    for split in ('train', 'val'):
        (dst / split).symlink_to(src / split)
    (dst / 'annotations' / 'train.json').write_text(
        (src / 'annotations' / 'train.json').read_text())
    images = sorted(str(p) for p in (src / 'val').iterdir())
    # the same inference path scores both tools: no gap between labels and the rest needed
    relabel_coco(str(src / 'annotations' / 'val.json'), str(src / 'val'),
                 own_detections(STUDENT_N, state, images, min_gap=0),
                 str(dst / 'annotations' / 'val.json'))
    torch.save({'state_dict': state}, tmp / 'a.pth')
    torch.save({'state_dict': swap_classes(state, model.bbox_head.head_module, 0, 2)},
               tmp / 'b.pth')
    return tmp, str(tmp / 'labelled')


def coco_numbers(out):
    return {k: float(v) for k, v in re.findall(r'(coco/bbox_mAP(?:_50)?): ([\d.]+)', out)}


def md_row(text, name):
    """The Results table's cells of model ``name`` (AP cells without the difference)."""
    line = next(ln for ln in text.splitlines() if ln.startswith(f'| {name} | ') and
                '`' not in ln)
    return [c.split(' (')[0].strip() for c in line.strip('|').split('|')[1:]]


def class_rows(text):
    start = text.index('## Per-class AP')
    rows = {}
    for line in text[start:].splitlines()[4:]:
        if not line.startswith('|'):
            break
        cells = [c.strip() for c in line.strip('|').split('|')]
        rows[cells[0]] = cells[1:]
    return rows


def test_report_equals_test_py_for_each_checkpoint(setup):
    tmp, root = setup
    ref = {}
    for name in ('a', 'b'):
        extra = ['--show-dir', str(tmp / 'shown'), '--json-prefix',
                 str(tmp / 'preds' / name)] if name == 'a' else []
        ref[name] = run_tool([TEST, STUDENT_N, str(tmp / f'{name}.pth'), '--work-dir',
                              str(tmp / f'test_{name}')] + extra + OPTS, cwd=root)
    a, b = coco_numbers(ref['a']), coco_numbers(ref['b'])
    assert a['coco/bbox_mAP'] > 0.9 and 0.2 < b['coco/bbox_mAP'] < 0.8, (a, b)

    out = run_tool([COMPARE, STUDENT_N, str(tmp / 'a.pth'), STUDENT_N, str(tmp / 'b.pth'),
                    '--names', 'plain', 'swapped', '--out', str(tmp / 'cmp'),
                    '--score-thr', '0.1'] + OPTS,
                   cwd=root)
    assert '[compare] 2/2 swapped: detector checkpoint' in out
    assert '4/4' in out  # mmengine's progress bar over the val images
    text = (tmp / 'cmp' / 'compare.md').read_text()
    for name, numbers in (('plain', a), ('swapped', b)):
        cells = md_row(text, name)
        assert float(cells[0]) == numbers['coco/bbox_mAP'], (name, cells, numbers)
        assert float(cells[1]) == numbers['coco/bbox_mAP_50'], (name, cells, numbers)
        assert cells[5].endswith('M') and float(cells[6]) > 0 and float(cells[7]) > 0

    # the swapped labelled class lost, the other did not change
    with open(osp.join(root, 'data', 'shapes', 'annotations', 'val.json')) as f:
        labels = json.load(f)
    rows = class_rows(text)
    assert {cls for cls, cells in rows.items() if cells[0] != '0'} == {'square', 'circle'}
    assert float(rows['square'][1]) > 0.9 and float(rows['square'][3]) < -80, rows
    assert rows['circle'][1] == rows['circle'][2] and float(rows['circle'][1]) > 0.9, rows
    assert rows['triangle'][1:] == ['n/a', 'n/a', 'n/a']  # predicted, never labelled
    assert '- **swapped** vs plain: gained none; lost square -' in text
    # the pictured images: first one where the swapped model misses squares
    first = text.split('| image | plain | swapped |')[1].splitlines()[2]
    found_plain, found_swapped = map(int, re.findall(r'\((\d+) found', first))
    assert found_plain >= 10 and found_swapped == 0, first

    # tools/test.py's own outputs: per-class AP beside its log, the same numbers;
    # predictions as COCO json; every val image drawn into --show-dir itself
    (per_class, ) = glob.glob(str(tmp / 'test_a' / '*' / 'per_class_ap.md'))
    for cls, cells in rows.items():
        assert f'| {cls} | {cells[0]} | {cells[1]} |' in open(per_class).read()
    preds = json.load(open(tmp / 'preds' / 'a.bbox.json'))
    assert {p['image_id'] for p in preds} <= {im['id'] for im in labels['images']} and preds
    assert sorted(p.name for p in (tmp / 'shown').iterdir()) == sorted(
        im['file_name'] for im in labels['images'])

    import cv2
    picture = cv2.imread(str(tmp / 'cmp' / 'compare.png'))
    assert picture.shape[1] == 3 * (PANEL + 4)  # ground truth, plain, swapped
    assert picture.shape[0] > 4 * PANEL  # the 4 val images


def test_bad_input_is_an_error_line(setup):
    tmp, root = setup
    proc = subprocess.run([sys.executable, COMPARE, STUDENT_N, str(tmp / 'a.pth'),
                           str(tmp / 'nope.py'), str(tmp / 'b.pth'), '--out',
                           str(tmp / 'bad')], cwd=root, capture_output=True, text=True)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert re.search(r"^error: b: config file '.*nope.py' does not exist", proc.stderr, re.M), \
        proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, COMPARE, STUDENT_N, str(tmp / 'a.pth'), STUDENT_N,
                           '--out', str(tmp / 'bad')], cwd=root, capture_output=True,
                          text=True)
    assert proc.returncode == 2 and 'give CONFIG CHECKPOINT pairs' in proc.stderr
