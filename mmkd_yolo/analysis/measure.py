"""What a detector costs: parameters, GFLOPs and CPU time per image."""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def measure_model(model: nn.Module, img_size: int, runs: int = 20, warmup: int = 5) -> dict:
    """Parameters, GFLOPs per image and median CPU ms of the network per image.

    Batch 1, backbone + neck + head, on the CPU; pre-processing and NMS left out: NMS time
    depends on how many boxes a half-trained model scores above the threshold, not on the
    model. GFLOPs count the convolutions (2 x multiply-adds, as Ultralytics reports them).

    Args:
        model (nn.Module): An mmdet / mmyolo detector (its ``_forward``); moved to the CPU.
        img_size (int): Input height and width (px).
        runs (int): Timed forward passes. Defaults to 20.
        warmup (int): Untimed passes first. Defaults to 5.

    Returns:
        dict: ``params``, ``gflops``, ``ms``.
    """
    from ..apis.dry_run import conv_gflops
    model = model.cpu().eval()
    params = sum(p.numel() for p in model.parameters())
    x = torch.rand(1, 3, img_size, img_size)
    gflops = conv_gflops(model, model._forward, x)
    times = []
    # Trained YOLOv5 nets produce denormal activations; x86 CPUs handle them up to 30x
    # slower (measured here: 1360 ms vs 43 ms), which says nothing about the model.
    # Deployment runtimes flush them to zero; so does this measurement.
    torch.set_flush_denormal(True)
    try:
        with torch.no_grad():
            for i in range(warmup + runs):
                start = time.perf_counter()
                model._forward(x)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_flush_denormal(False)
    return dict(params=params, gflops=gflops, ms=statistics.median(times))
