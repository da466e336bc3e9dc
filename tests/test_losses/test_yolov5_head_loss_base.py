"""weighs_images: which distillation losses take the unlabeled images' weights, built or
as configs (the one test behind the default --unlabeled-weight, YOLOv5Distill's check of
a weight given, and the weights handed out each step)."""
import pytest
import torch
from mmrazor.models import ChannelWiseDivergence

from mmkd_yolo.losses import YOLOv5MSEOutputDistillLoss, YOLOv5OutputDistillLoss
from mmkd_yolo.losses.yolov5_head_loss_base import weighs_images
from mmkd_yolo.models.mixed_batch import image_weights_set


class DuckTypedLoss(torch.nn.Module):
    """Has an ``image_weights`` attribute but does not weigh images by it."""

    def __init__(self):
        super().__init__()
        self.image_weights = None


@pytest.mark.parametrize('loss, weighs', [
    (YOLOv5OutputDistillLoss(), True),
    (YOLOv5MSEOutputDistillLoss(), True),
    (ChannelWiseDivergence(tau=1), False),
    (DuckTypedLoss(), False),
    (dict(type='YOLOv5OutputDistillLoss'), True),
    (dict(type='mmkd_yolo.YOLOv5MSEOutputDistillLoss'), True),
    (dict(type=YOLOv5OutputDistillLoss), True),
    (dict(type='mmrazor.ChannelWiseDivergence'), False),
    (dict(type='NoSuchLoss'), False),
    (None, False),
])
def test_weighs_images_built_or_configured(loss, weighs):
    assert weighs_images(loss) is weighs


def test_weights_go_to_the_losses_that_weigh_images_only():
    out, duck = YOLOv5OutputDistillLoss(), DuckTypedLoss()
    weights = torch.tensor([1.0, 2.0])
    with image_weights_set([out, duck], weights):
        assert out.image_weights is weights and duck.image_weights is None
    assert out.image_weights is None
