"""A strong photometric augmentation of a batch on its device: the student's view of the
unlabeled images."""
from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import get_rank, get_world_size
from torch import Tensor, nn

from ..registry import MODELS

#: ITU-R BT.601 luma weights of R, G, B: the grey that contrast and saturation blend with.
_LUMA = (0.299, 0.587, 0.114)


@MODELS.register_module()
class UnlabeledPhotometricAug(nn.Module):
    """Colour jitter, Gaussian blur, Gaussian noise and cutout, drawn per image.

    The student's view of an unlabeled image in the two-view consistency of `Mean Teacher
    <https://arxiv.org/abs/1703.01780>`_ and `Efficient Teacher
    <https://arxiv.org/abs/2302.07577>`_: the teacher sees the image as the pipeline made
    it, the student this copy. Only the pixel values change, never the geometry, so the
    teacher's dense outputs stay the targets of the same cells. Applied by
    :class:`~mmkd_yolo.models.YOLOv5UnlabeledDataPreprocessor` (``student_aug``) to the
    batch on its device, after the data loader: the pipeline runs once per image.

    Every call draws one seed per process of the run from torch's global CPU generator,
    which mmengine seeds (``randomness.seed``), and draws its augmentation from this
    process's seed: a run repeats itself, and under DDP each rank augments its own
    images its own way (mmengine seeds every rank alike unless
    ``randomness.diff_rank_seed``; drawn from the global generator itself, all ranks
    would augment alike). mmengine does not restore the generators' state on resume: a
    resumed run draws other augmentations than an uninterrupted one would have.

    Per image, in this order:

    * colour jitter (probability ``jitter_prob``): brightness, contrast, saturation and hue,
      one 3 x 3 colour matrix and offset per image (hue: a rotation about the grey axis);
    * Gaussian blur (``blur_prob``): a separable depthwise convolution of side
      ``blur_kernel``, sigma drawn from ``blur_sigma``;
    * Gaussian noise (``noise_prob``): the same noise in the three channels, its standard
      deviation drawn from [0, ``noise_std``]; then values clamped to [0, 255];
    * cutout (``cutout_prob``): ``cutout_num`` rectangles, each side ``cutout_scale`` of the
      image's, filled with ``fill`` (grey 114, YOLOv5's padding value).

    Cost: 7 ms best, 12 ms median, for 8 x 3 x 320 x 320 on one thread of a 2-core EPYC
    shared with a training run; the blur takes about 40 % of it.

    Args:
        brightness (float): Brightness factor drawn from [1 - b, 1 + b]. Defaults to 0.4
            (YOLOv5's ``hsv_v``).
        contrast (float): Contrast factor drawn from [1 - c, 1 + c]. Defaults to 0.4.
        saturation (float): Saturation factor drawn from [1 - s, 1 + s]. Defaults to 0.7
            (YOLOv5's ``hsv_s``).
        hue (float): Hue shift drawn from [-hue, hue], in turns. Defaults to 0.015 (YOLOv5's
            ``hsv_h``: a larger shift could cross the colour cues of classes).
        jitter_prob (float): Probability of the colour jitter. Defaults to 0.8.
        blur_prob (float): Probability of the blur. Defaults to 0.5.
        blur_sigma (tuple[float, float]): Range of the blur's sigma, in pixels. Defaults
            to (0.1, 2.0).
        blur_kernel (int): Odd side of the blur kernel. Defaults to 5.
        noise_prob (float): Probability of the noise. Defaults to 0.5.
        noise_std (float): Largest standard deviation of the noise, in pixel levels.
            Defaults to 8.
        cutout_prob (float): Probability of the cutout. Defaults to 0.7.
        cutout_num (tuple[int, int]): Fewest and most rectangles. Defaults to (1, 5).
        cutout_scale (tuple[float, float]): Range of a rectangle's side as a share of the
            image's side. Defaults to (0.05, 0.2).
        fill (float): Value of the cut-out pixels. Defaults to 114.
    """

    def __init__(self,
                 brightness: float = 0.4,
                 contrast: float = 0.4,
                 saturation: float = 0.7,
                 hue: float = 0.015,
                 jitter_prob: float = 0.8,
                 blur_prob: float = 0.5,
                 blur_sigma: Tuple[float, float] = (0.1, 2.0),
                 blur_kernel: int = 5,
                 noise_prob: float = 0.5,
                 noise_std: float = 8.0,
                 cutout_prob: float = 0.7,
                 cutout_num: Tuple[int, int] = (1, 5),
                 cutout_scale: Tuple[float, float] = (0.05, 0.2),
                 fill: float = 114.0) -> None:
        super().__init__()
        for name, p in (('jitter_prob', jitter_prob), ('blur_prob', blur_prob),
                        ('noise_prob', noise_prob), ('cutout_prob', cutout_prob)):
            if not 0 <= p <= 1:
                raise ValueError(f'{name}={p}: a probability, use a value in [0, 1].')
        if not 0 < blur_sigma[0] <= blur_sigma[1]:
            raise ValueError(f'blur_sigma={tuple(blur_sigma)}: use (lowest, highest) with '
                             '0 < lowest <= highest (a sigma of 0 makes a 0 / 0 kernel).')
        if not 0 < cutout_scale[0] <= cutout_scale[1] <= 1:
            raise ValueError(f'cutout_scale={tuple(cutout_scale)}: use (smallest, largest) '
                             "shares of the image's side with 0 < smallest <= largest <= 1.")
        if blur_kernel < 1 or blur_kernel % 2 == 0:
            raise ValueError(f'blur_kernel={blur_kernel}: use an odd side (3, 5, 7), so '
                             'the blur does not shift the image.')
        if not 1 <= cutout_num[0] <= cutout_num[1]:
            raise ValueError(f'cutout_num={cutout_num}: use (fewest, most) with '
                             '1 <= fewest <= most.')
        self.brightness, self.contrast = brightness, contrast
        self.saturation, self.hue = saturation, hue
        self.jitter_prob, self.blur_prob = jitter_prob, blur_prob
        self.blur_sigma, self.blur_kernel = tuple(blur_sigma), blur_kernel
        self.noise_prob, self.noise_std = noise_prob, noise_std
        self.cutout_prob, self.cutout_num = cutout_prob, tuple(cutout_num)
        self.cutout_scale, self.fill = tuple(cutout_scale), fill

    def forward(self, images: Tensor) -> Tensor:
        """Augment each image of a batch.

        Args:
            images (Tensor): RGB pixel values in [0, 255], float, shape (M, 3, H, W).

        Returns:
            Tensor: A new tensor of the same shape and range (``images`` is not changed).
        """
        m, _, h, w = images.shape
        if m == 0:
            return images.clone()
        gen, device_gen = self._generators(images.device)
        # the batch's draws at once, on the CPU: the same numbers on any device
        draw = torch.rand(m, 9, generator=gen)
        out = self._jitter(images, draw[:, :5])
        blurred = (draw[:, 5] < self.blur_prob).nonzero().squeeze(1)
        if len(blurred):
            sigma = self.blur_sigma[0] + draw[blurred, 6] * (self.blur_sigma[1] -
                                                             self.blur_sigma[0])
            index = blurred.to(out.device)
            out[index] = self._blur(out[index], sigma)
        noisy = (draw[:, 7] < self.noise_prob).nonzero().squeeze(1).tolist()
        if noisy:
            # one plane for the three channels: a third of the draws, and plain
            # luminance noise as camera sensors make it
            noise = torch.randn(len(noisy), 1, h, w, device=out.device, dtype=out.dtype,
                                generator=device_gen)
            for plane, i in zip(noise, noisy):  # in place: no gather and scatter
                out[i].add_(plane, alpha=draw[i, 8].item() * self.noise_std)
        out.clamp_(0, 255)
        self._cutout(out, gen)
        return out

    @staticmethod
    def _generators(device: torch.device) -> Tuple[torch.Generator, torch.Generator]:
        """This call's generators, on the CPU and on ``device``, seeded with this rank's
        seed of the world's, all drawn from the global CPU generator: the global state
        moves alike on every rank, the draws differ."""
        seeds = torch.randint(2**63 - 1, (get_world_size(), ), dtype=torch.int64)
        seed = int(seeds[get_rank()])
        gen = torch.Generator().manual_seed(seed)
        if device.type == 'cpu':
            return gen, gen
        device_seed = int(torch.randint(2**63 - 1, (1, ), generator=gen))
        return gen, torch.Generator(device=device).manual_seed(device_seed)

    def _jitter(self, images: Tensor, draw: Tensor) -> Tensor:
        """Brightness, contrast, saturation and hue as one affine map per image, applied
        in one pass: ``A @ rgb + offset``, ``A`` (M, 3, 3), ``offset`` (M,)."""
        m = images.shape[0]
        on = (draw[:, 0] < self.jitter_prob).float()

        def factor(u: Tensor, spread: float) -> Tensor:  # 1 where the jitter is off
            return 1 + on * spread * (2 * u - 1)

        b, c, s = (factor(draw[:, 1], self.brightness), factor(draw[:, 2], self.contrast),
                   factor(draw[:, 3], self.saturation))
        angle = on * self.hue * (2 * draw[:, 4] - 1) * 2 * math.pi
        luma = torch.tensor(_LUMA)
        eye = torch.eye(3).expand(m, 3, 3)
        # saturation: blend with the grey of each pixel
        sat = s.view(m, 1, 1) * eye + (1 - s).view(m, 1, 1) * luma.expand(3, 3)
        # hue: Rodrigues' rotation about the grey axis (1, 1, 1) / sqrt(3); keeps grey grey
        k = 1 / math.sqrt(3)
        cross = torch.tensor([[0., -k, k], [k, 0., -k], [-k, k, 0.]])
        cos, sin = angle.cos().view(m, 1, 1), angle.sin().view(m, 1, 1)
        rot = cos * eye + sin * cross + (1 - cos) * torch.full((3, 3), k * k)
        matrix = (c * b).view(m, 1, 1) * rot @ sat
        # contrast blends with the mean grey of the input, which saturation keeps (each
        # pixel's grey); the hue rotation keeps the channels' mean, not the grey, so with
        # a hue shift the blend is with a grey off by as much as that small shift moves it
        pixels = images.flatten(2)
        mean_grey = pixels.mean(2) @ luma.to(images)
        offset = ((1 - c) * b).to(images) * mean_grey
        return torch.baddbmm(offset.view(m, 1, 1).expand(m, 3, 1), matrix.to(images),
                             pixels).view_as(images)

    def _blur(self, images: Tensor, sigma: Tensor) -> Tensor:
        """Gaussian blur, a kernel per image (M, C, H, W), as one depthwise convolution.

        Full k x k kernels: PyTorch's CPU depthwise convolution with 1 x k and k x 1
        kernels (the separable form) took five times as long, and one call per image
        twice as long as one for the batch.
        """
        m, ch, h, w = images.shape
        radius = self.blur_kernel // 2
        taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
        line = torch.exp(-taps[None]**2 / (2 * sigma[:, None]**2))
        line = line / line.sum(1, keepdim=True)
        kernel = (line[:, :, None] * line[:, None, :]).repeat_interleave(ch, 0)
        padded = F.pad(images.reshape(1, m * ch, h, w), (radius, ) * 4, mode='replicate')
        return F.conv2d(padded, kernel[:, None].to(images), groups=m * ch).view_as(images)

    def _cutout(self, images: Tensor, gen: torch.Generator) -> None:
        """Fill ``cutout_num`` rectangles of each chosen image with ``fill``, in place."""
        m, _, h, w = images.shape
        lo, hi = self.cutout_num
        chosen = (torch.rand(m, generator=gen) < self.cutout_prob).tolist()
        counts = torch.randint(lo, hi + 1, (m, ), generator=gen).tolist()
        boxes = torch.rand(m, hi, 4, generator=gen).tolist()  # side x, side y, left, top
        s_lo, s_hi = self.cutout_scale
        for i in range(m):
            if not chosen[i]:
                continue
            for sx, sy, px, py in boxes[i][:counts[i]]:
                bw = max(1, round((s_lo + sx * (s_hi - s_lo)) * w))
                bh = max(1, round((s_lo + sy * (s_hi - s_lo)) * h))
                x0, y0 = int(px * (w - bw + 1)), int(py * (h - bh + 1))
                images[i, :, y0:y0 + bh, x0:x0 + bw] = self.fill
