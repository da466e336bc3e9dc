"""Run ``tools/test.py``'s evaluation of one prepared config, quietly, with a progress bar."""
from __future__ import annotations

import contextlib
import io
import sys
import time
from typing import Dict, Tuple

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar
from torch import nn


class _ProgressHook(Hook):
    """Advances a progress bar by the images of each test batch."""

    def __init__(self, bar: ProgressBar):
        self.bar = bar

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.bar.update(len(outputs))


def run_test(cfg: Config, name: str) -> Tuple[Dict[str, float], nn.Module]:
    """``runner.test()`` of ``cfg`` (from :func:`~mmkd_yolo.apis.prepare_test_cfg`), as
    ``tools/test.py`` runs it, with mmengine's progress bar over the val images instead of
    the log on the console.

    The log goes to the run's work dir at WARNING level; pycocotools' prints (building
    the dataset, evaluating) are held back. Each run gets its own experiment name: mmengine
    keeps one logger per name, and runs started in the same second would otherwise share
    the first one's.

    Args:
        cfg (Config): A test config with its weights (``load_from``).
        name (str): The run's name (experiment name prefix).

    Returns:
        tuple: (the metrics ``runner.test()`` returns, the evaluated detector).
    """
    from mmengine.model import is_model_wrapper

    from ..apis import build_runner
    cfg.log_level = 'WARNING'
    cfg.experiment_name = f'{name}_{time.time_ns()}'
    runner = build_runner(cfg)
    console = sys.stdout
    with contextlib.redirect_stdout(io.StringIO()):
        bar = ProgressBar(len(runner.test_dataloader.dataset), file=console)
        runner.register_hook(_ProgressHook(bar), priority='VERY_LOW')
        metrics = runner.test()
    console.write('\n')
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return dict(metrics), model
