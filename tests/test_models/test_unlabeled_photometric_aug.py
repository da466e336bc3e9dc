"""UnlabeledPhotometricAug: each part alone, by what it must keep and what it must change."""
import pytest
import torch

from mmkd_yolo.models import UnlabeledPhotometricAug
from mmkd_yolo.registry import MODELS

LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
OFF = dict(jitter_prob=0.0, blur_prob=0.0, noise_prob=0.0, cutout_prob=0.0)


def only(**kwargs):
    """The augmentation with every part off but those ``kwargs`` switch on."""
    return UnlabeledPhotometricAug(**dict(OFF, **kwargs))


def colour_images(m=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(m, 3, size, size, generator=g) * 200 + 20


def test_built_from_the_registry_and_the_defaults_change_every_image():
    aug = MODELS.build(dict(type='UnlabeledPhotometricAug', _scope_='mmkd_yolo'))
    assert isinstance(aug, UnlabeledPhotometricAug)
    images = colour_images(8)
    before = images.clone()
    torch.manual_seed(0)
    out = aug(images)
    assert torch.equal(images, before)  # the input is left alone
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 255
    changed = (out - images).abs().mean((1, 2, 3))
    assert (changed > 1.0).all(), changed


def test_the_global_seed_repeats_a_draw():
    aug = UnlabeledPhotometricAug()
    images = colour_images()
    torch.manual_seed(3)
    first = aug(images)
    torch.manual_seed(3)
    assert torch.equal(aug(images), first)
    assert (aug(images) - first).abs().max() > 1.0  # the next draw differs


def test_colour_jitter_is_a_colour_map_pixel_by_pixel():
    """Geometry unchanged: two pixels of one colour stay of one colour, wherever they are
    (no pixel moves, none depends on its neighbours)."""
    images = colour_images(4, size=16)
    images[:, :, 8:, :] = images[:, :, :8, :]  # the bottom half repeats the top
    torch.manual_seed(0)
    out = only(jitter_prob=1.0, brightness=0.4, contrast=0.4, saturation=0.7, hue=0.1)(images)
    assert torch.allclose(out[:, :, 8:], out[:, :, :8], atol=1e-4)
    assert (out - images).abs().mean() > 5


def test_brightness_scales_and_contrast_keeps_the_mean_grey():
    images = colour_images(6) * 0.5 + 70  # in [80, 180]: no clamp at factors up to 1.4
    torch.manual_seed(0)
    out = only(jitter_prob=1.0, brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0)(images)
    factor = out / images  # one factor per image, in [0.6, 1.4]
    per_image = factor.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), rtol=1e-5)
    assert per_image[:, 0].min() >= 0.6 and per_image[:, 0].max() <= 1.4
    assert (per_image[:, 0] - 1).abs().max() > 0.05
    torch.manual_seed(0)
    out = only(jitter_prob=1.0, brightness=0.0, contrast=0.4, saturation=0.0, hue=0.0)(images)
    mean_grey = lambda x: (x * LUMA).sum(1).mean((1, 2))  # noqa: E731
    assert torch.allclose(mean_grey(out), mean_grey(images), rtol=1e-4)
    assert (out.std((1, 2, 3)) / images.std((1, 2, 3)) - 1).abs().max() > 0.05


def test_saturation_keeps_the_luma_hue_the_channel_mean_and_grey_stays_grey():
    images = colour_images(6) * 0.5 + 70  # in [80, 180]: no clamp
    luma = lambda x: (x * LUMA).sum(1)  # noqa: E731
    torch.manual_seed(0)
    out = only(jitter_prob=1.0, brightness=0.0, contrast=0.0, saturation=0.7, hue=0.0)(images)
    assert torch.allclose(luma(out), luma(images), atol=1e-3)
    assert (out - images).abs().mean() > 3
    torch.manual_seed(0)
    # a rotation about the grey axis (1, 1, 1): the channels' mean stays
    out = only(jitter_prob=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.3)(images)
    assert torch.allclose(out.mean(1), images.mean(1), atol=1e-3)
    assert (out - images).abs().mean() > 3
    grey = images.mean(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()
    torch.manual_seed(0)
    both = only(jitter_prob=1.0, brightness=0.0, contrast=0.0, saturation=0.7, hue=0.3)
    assert torch.allclose(both(grey), grey, atol=1e-3)


def test_blur_keeps_flat_images_and_smooths_edges():
    flat = torch.full((3, 3, 20, 20), 77.0)
    torch.manual_seed(0)
    assert torch.allclose(only(blur_prob=1.0)(flat), flat, atol=1e-3)
    edges = torch.zeros(3, 3, 20, 20)
    edges[..., ::2] = 200.0  # stripes one pixel wide
    torch.manual_seed(0)
    out = only(blur_prob=1.0, blur_sigma=(1.0, 2.0))(edges)
    assert (out.std((1, 2, 3)) < 0.5 * edges.std((1, 2, 3))).all()
    assert torch.allclose(out.mean((1, 2, 3)), edges.mean((1, 2, 3)), rtol=0.05)


def test_noise_is_shared_by_the_channels_and_bounded_by_noise_std():
    images = torch.full((4, 3, 64, 64), 128.0)
    torch.manual_seed(0)
    out = only(noise_prob=1.0, noise_std=20.0)(images)
    delta = out - images
    assert torch.equal(delta[:, 0], delta[:, 1]) and torch.equal(delta[:, 0], delta[:, 2])
    std = delta.std((1, 2, 3))
    assert (std > 0.1).all() and (std < 21).all(), std


def test_cutout_fills_grey_rectangles_of_the_set_size():
    side = 100
    images = torch.zeros(16, 3, side, side)
    torch.manual_seed(0)
    out = only(cutout_prob=1.0, fill=114.0)(images)
    filled = (out == 114.0).all(1)
    assert ((out == 0) | (out == 114.0)).all()
    area = filled.flatten(1).sum(1)
    # 1 to 5 rectangles of sides 5 to 20 px (overlaps only shrink the union)
    assert (area >= 5 * 5).all() and (area <= 5 * 20 * 20).all(), area
    assert area.float().std() > 10  # the count and sizes vary


@pytest.mark.parametrize('kwargs, message', [
    (dict(blur_kernel=4), 'blur_kernel=4: use an odd side'),
    (dict(cutout_num=(0, 3)), r'cutout_num=\(0, 3\): use \(fewest, most\)'),
    # a sigma of 0 made a 0 / 0 kernel: NaN images
    (dict(blur_sigma=(0, 1.0)), r'blur_sigma=\(0, 1.0\): use \(lowest, highest\) with 0 <'),
    (dict(blur_sigma=(2.0, 1.0)), r'blur_sigma=\(2.0, 1.0\)'),
    # a side over the image's wrapped the slice round
    (dict(cutout_scale=(0.5, 1.5)), r'cutout_scale=\(0.5, 1.5\): use \(smallest, largest\)'),
    (dict(cutout_scale=(0.0, 0.2)), r'cutout_scale=\(0.0, 0.2\)'),
    (dict(cutout_scale=(0.3, 0.2)), r'cutout_scale=\(0.3, 0.2\)'),
    (dict(jitter_prob=1.5), r'jitter_prob=1.5: a probability, use a value in \[0, 1\]'),
    (dict(blur_prob=-0.1), r'blur_prob=-0.1: a probability'),
    (dict(noise_prob=2), r'noise_prob=2: a probability'),
    (dict(cutout_prob=float('nan')), r'cutout_prob=nan: a probability'),
])
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UnlabeledPhotometricAug(**kwargs)


def test_the_largest_cutout_scale_fills_the_whole_image():
    images = torch.zeros(2, 3, 10, 12)
    torch.manual_seed(0)
    out = only(cutout_prob=1.0, cutout_scale=(1.0, 1.0), fill=114.0)(images)
    assert (out == 114.0).all()


def on_rank(monkeypatch, rank, world_size):
    import mmkd_yolo.models.unlabeled_photometric_aug as module
    monkeypatch.setattr(module, 'get_rank', lambda: rank)
    monkeypatch.setattr(module, 'get_world_size', lambda: world_size)


def test_each_rank_draws_its_own_augmentation_from_the_same_seed(monkeypatch):
    """mmengine seeds every DDP rank alike (diff_rank_seed=False): drawn from the global
    generator, every rank augmented its images alike. Each rank's draws differ; the
    global generator moves alike on all; one process repeats itself from the seed."""
    aug = UnlabeledPhotometricAug()
    images = colour_images()

    def draw(rank, world_size, seed=3):
        on_rank(monkeypatch, rank, world_size)
        torch.manual_seed(seed)
        out = aug(images)
        return out, torch.rand(1)

    (rank0, after0), (rank1, after1) = draw(0, 2), draw(1, 2)
    assert (rank0 - rank1).abs().mean((1, 2, 3)).min() > 1.0  # every image differs
    assert torch.equal(after0, after1)  # the global stream stays in step across ranks
    assert torch.equal(draw(1, 2)[0], rank1)
    alone, _ = draw(0, 1)
    assert torch.equal(draw(0, 1)[0], alone)
    assert torch.isfinite(alone).all()


def test_an_empty_batch_passes():
    assert UnlabeledPhotometricAug()(torch.zeros(0, 3, 8, 8)).shape == (0, 3, 8, 8)
