"""tools/misc/demo_report.py: the demo's report.md from the comparison's results."""
import importlib
import math
import os.path as osp
import sys
from types import SimpleNamespace

from mmkd_yolo.analysis import ModelResult, ValSet

from ..conftest import REPO


def model(name, mAP, mAP50):
    return ModelResult(name, f'{name}.py', f'{name}.pth', name,
                       {'coco/bbox_mAP': mAP, 'coco/bbox_mAP_50': mAP50,
                        'coco/bbox_mAP_s': math.nan, 'coco/bbox_mAP_m': 0.4,
                        'coco/bbox_mAP_l': 0.6}, 'p.json', 1_872_157, 0.27, 9.5)


def test_report_from_the_comparison(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(osp.join(REPO, 'tools', 'misc'))
    sys.modules.pop('demo_report', None)
    demo_report = importlib.import_module('demo_report')
    val = ValSet('val.json', ['a', 'b', 'c'], [1, 2, 3], [], {}, [1, 1, 1])
    comparison = SimpleNamespace(val_set=val, models=[
        model('student alone', 0.312, 0.534), model('student distilled', 0.345, 0.571),
        model('teacher', 0.5, 0.7)])
    path = tmp_path / 'report.md'
    demo_report.write_report(str(path), comparison, {'teacher': 0.0, 'plain': 65.0},
                             dict(num_train=64, num_val=32, img_size=160), seed=0, fast=True,
                             total_seconds=81.0)
    text = path.read_text()
    assert text.startswith('# mmkd_yolo demo (FAST=1 smoke run)')
    assert 'Generated shapes, 3 classes, 64 train / 32 val images of 160 px; seed 0' in text
    assert '| student distilled | 0.345 (+3.3) | 0.571 (+3.7) | n/a |' in text
    assert '**Distilled minus alone: +3.3 points mAP@.5:.95, +3.7 points mAP@.5**' in text
    assert '| teacher | reused |' in text and '| plain | 1m05s |' in text
    assert '(compare.png)' in text and '(curves.png)' in text and '(compare.md)' in text
