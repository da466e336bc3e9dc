"""compare.md's tables and tools/test.py's per-class AP file, on hand-made numbers."""
import math

from mmkd_yolo.analysis import ImageMatch, ModelResult, ValSet, results_table
from mmkd_yolo.analysis.report import gains, per_class_table, write_compare_md, \
    write_per_class_ap

VAL = ValSet('/d/val.json', ['cat', 'dog', 'cow', 'eel'], [1, 2, 3, 4],
             [dict(id=0, path='/d/a.jpg'), dict(id=1, path='/d/b.jpg')],
             {0: [], 1: []}, [5, 7, 2, 0])


def metrics(mAP, mAP50, s, cat, dog, cow):
    return {'coco/bbox_mAP': mAP, 'coco/bbox_mAP_50': mAP50, 'coco/bbox_mAP_s': s,
            'coco/bbox_mAP_m': 0.5, 'coco/bbox_mAP_l': -1.0, 'coco/cat_precision': cat,
            'coco/dog_precision': dog, 'coco/cow_precision': cow,
            'coco/eel_precision': math.nan}


PLAIN = ModelResult('plain', 'n.py', 'plain.pth', 'detector checkpoint plain.pth',
                    metrics(0.312, 0.534, 0.2, 0.4, 0.3, 0.25), 'p.json', 1_872_157, 4.21,
                    12.34)
KD = ModelResult('distilled', 'kd.py', 'kd.pth', 'the student of kd.pth',
                 metrics(0.345, 0.571, 0.25, 0.5, 0.25, 0.3), 'k.json', 1_872_157, 4.21, 12.0)


def test_results_table_differences_in_points():
    lines = results_table([PLAIN, KD])
    assert lines[0].startswith('| model | mAP@.5:.95 | mAP@.5 | AP small | AP medium')
    assert lines[2] == '| plain | 0.312 | 0.534 | 0.200 | 0.500 | n/a | 1.87M | 4.21 | 12.3 |'
    assert lines[3] == ('| distilled | 0.345 (+3.3) | 0.571 (+3.7) | 0.250 (+5.0) | 0.500 '
                        '(+0.0) | n/a | 1.87M | 4.21 | 12.0 |')


def test_per_class_table_and_gains():
    lines = per_class_table(VAL, ['plain', 'distilled'], [PLAIN.metrics, KD.metrics])
    assert lines[0] == '| class | boxes | plain | distilled | Δ distilled |'
    assert lines[2:] == ['| cat | 5 | 0.400 | 0.500 | +10.0 |',
                         '| dog | 7 | 0.300 | 0.250 | -5.0 |',
                         '| cow | 2 | 0.250 | 0.300 | +5.0 |',
                         '| eel | 0 | n/a | n/a | n/a |']
    gained, lost = gains(VAL, PLAIN.metrics, KD.metrics)
    assert [(c, round(d, 1)) for c, d in gained] == [('cat', 10.0), ('cow', 5.0)]
    assert [(c, round(d, 1)) for c, d in lost] == [('dog', -5.0)]


def test_compare_md(tmp_path):
    path = tmp_path / 'compare.md'
    rows = [(1, [ImageMatch(1, 2, 3), ImageMatch(4, 0, 0)])]
    write_compare_md(str(path), VAL, [PLAIN, KD], rows, 'compare.png', 160, 2, 0.3)
    text = path.read_text()
    assert 'Val set `/d/val.json`: 2 images, 14 boxes, 4 classes, evaluated at 160 px' in text
    assert '| distilled | `kd.py` | `kd.pth` | the student of kd.pth |' in text
    assert '| distilled | 0.345 (+3.3) |' in text
    assert '- **distilled** vs plain: gained cat +10.0, cow +5.0; lost dog -5.0' in text
    assert '](compare.png)' in text
    assert ('| b.jpg | F1 0.29 (1 found, 2 false, 3 missed) | F1 1.00 (4 found, 0 false, 0 '
            'missed) |') in text


def test_per_class_ap_file(tmp_path):
    path = tmp_path / 'per_class_ap.md'
    write_per_class_ap(str(path), 'kd.pth', VAL, KD.metrics)
    text = path.read_text()
    assert text.startswith('# Per-class AP: kd.pth')
    assert 'mAP@.5:.95 0.345, mAP@.5 0.571, AP small 0.250, AP medium 0.500, AP large n/a' in text
    assert '| dog | 7 | 0.250 |' in text
