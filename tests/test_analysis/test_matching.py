"""Per-image matching against the ground truth, and the disagreement ranking."""
import pytest

from mmkd_yolo.analysis import ImageMatch, ValSet, match_image, rank_disagreement

GT = [([0, 0, 10, 10], 0, None), ([20, 20, 40, 40], 1, None), ([50, 0, 60, 10], 0, None)]


def test_match_counts_found_false_and_missed():
    preds = [([0, 0, 10, 9], 0, 0.9),      # IoU 0.9 with the first object: found
             ([0, 0, 10, 10], 0, 0.8),     # the same object again: false
             ([20, 20, 40, 40], 0, 0.7),   # right place, wrong class: false
             ([50, 0, 60, 4], 0, 0.6),     # IoU 0.4 with the third object: false
             ([20, 20, 40, 40], 1, 0.1)]   # would be found, but scored below 0.3
    m = match_image(GT, preds, score_thr=0.3)
    assert (m.tp, m.fp, m.fn) == (1, 3, 2)
    assert m.f1 == pytest.approx(2 / (2 + 3 + 2))
    # the low-scored box counts once the threshold admits it
    m = match_image(GT, preds, score_thr=0.05)
    assert (m.tp, m.fp, m.fn) == (2, 3, 1)


def test_a_box_takes_the_best_object_not_yet_found():
    gt = [([0, 0, 10, 10], 0, None), ([2, 0, 12, 10], 0, None)]
    # the first box overlaps the second object best; the second box then takes the first
    preds = [([2, 0, 12, 10], 0, 0.9), ([1, 0, 11, 10], 0, 0.8)]
    assert match_image(gt, preds) == ImageMatch(2, 0, 0)


def test_f1_of_an_empty_image():
    assert match_image([], []).f1 == 1.0
    assert match_image([], [([0, 0, 5, 5], 0, 0.9)]).f1 == 0.0
    assert match_image(GT, []) == ImageMatch(0, 0, 3)


def test_rank_by_spread_of_f1_ties_in_val_order():
    val = ValSet('ann.json', ['a', 'b'], [1, 2], [dict(id=i, path=f'{i}.jpg') for i in
                                                   (7, 3, 5, 9)],
                 {7: GT, 3: GT, 5: GT, 9: []}, [2, 1])
    perfect = [(b, c, 0.9) for b, c, _ in GT]
    a = {7: perfect, 3: perfect[:1], 5: perfect, 9: []}
    b = {7: perfect, 3: perfect, 5: [], 9: []}
    ranked = rank_disagreement(val, [a, b])
    # image 5: F1 1 vs 0; image 3: 0.5 vs 1; images 7 and 9 agree, in val order
    assert [image_id for image_id, _ in ranked] == [5, 3, 7, 9]
    assert ranked[1][1] == [ImageMatch(1, 0, 2), ImageMatch(3, 0, 0)]
