"""The labeled part of a mixed batch: boxes follow their images, by hand-computed cases."""
import pytest
import torch

from mmkd_yolo.errors import ConfigError
from mmkd_yolo.models.mixed_batch import labeled_part, labeled_targets, unlabeled_mask

UNLABELED = torch.tensor([False, True, False, True, False])
# image index, class, x1, y1, x2, y2: boxes on images 0, 2, 2 and 4
BOXES = torch.tensor([[0, 1, 1., 1, 2, 2], [2, 0, 3, 3, 4, 4], [2, 1, 5, 5, 6, 6],
                      [4, 1, 7, 7, 8, 8]])
METAS = [f'meta{i}' for i in range(5)]


def test_labeled_targets_reindex_the_boxes_to_the_kept_images():
    keep, boxes, metas = labeled_targets(dict(bboxes_labels=BOXES, img_metas=METAS),
                                         UNLABELED)
    assert keep.tolist() == [0, 2, 4]
    assert boxes[:, 0].tolist() == [0, 1, 1, 2]  # images 0, 2, 4 are now 0, 1, 2
    assert torch.equal(boxes[:, 1:], BOXES[:, 1:])
    assert metas == ['meta0', 'meta2', 'meta4']
    assert BOXES[:, 0].tolist() == [0, 2, 2, 4]  # the batch's own boxes untouched


def test_labeled_part_takes_images_and_samples_together():
    inputs = torch.arange(5.).view(5, 1, 1, 1).expand(5, 3, 4, 4)
    samples = dict(bboxes_labels=BOXES, img_metas=METAS, unlabeled=UNLABELED)
    images, kept = labeled_part(inputs, samples, UNLABELED)
    assert images.shape == (3, 3, 4, 4) and images[:, 0, 0, 0].tolist() == [0., 2., 4.]
    assert kept['unlabeled'].tolist() == [False] * 3 and len(kept['img_metas']) == 3


def test_unlabeled_mask_of_box_batches_only():
    assert unlabeled_mask([object()]) is None  # mmdet's list of data samples
    assert unlabeled_mask(dict(bboxes_labels=BOXES)) is None
    assert unlabeled_mask(dict(bboxes_labels=BOXES, unlabeled=UNLABELED)) is UNLABELED
    with pytest.raises(ConfigError, match=r"unlabeled images with \['masks'\] targets"):
        unlabeled_mask(dict(bboxes_labels=BOXES, unlabeled=UNLABELED, masks=torch.zeros(1)))
