"""--epochs: the run's length and everything that counts in epochs, set together."""
import pytest

from mmkd_yolo.apis import prepare_train_cfg, schedule_summary
from mmkd_yolo.errors import ConfigError

from ..conftest import KD_OUT_S2N

KD_COCO_S2N = 'mmkd_yolo::distill/yolov5/kd-out_yolov5_s-to-n-v61_syncbn_fast_8xb16-300e_coco.py'
MMYOLO_N = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'


@pytest.mark.parametrize('config', [MMYOLO_N, KD_COCO_S2N])
def test_epochs_sets_length_decay_and_intervals(config):
    cfg = prepare_train_cfg(config, epochs=30)
    assert cfg.train_cfg.max_epochs == 30
    assert cfg.default_hooks.param_scheduler.max_epochs == 30  # was 300
    # mmyolo's intervals of 10 fit into 30 epochs: kept
    assert cfg.train_cfg.val_interval == 10 and cfg.default_hooks.checkpoint.interval == 10
    short = prepare_train_cfg(config, epochs=4)
    assert short.train_cfg.val_interval == 4 and short.default_hooks.checkpoint.interval == 4


def test_summary_says_what_the_length_sets():
    line = schedule_summary(prepare_train_cfg(KD_COCO_S2N, epochs=30))
    assert line.startswith('30 epochs; LR linear decay to 0.01x over 30 epochs')
    assert 'validation every 10, checkpoint every 10' in line
    # the config's stop of 20 of 300 epochs, scaled: the last 2 of 30
    assert 'distilling epochs 1-28 of 30; the last 2 train on the task loss alone' in line
    plain = schedule_summary(prepare_train_cfg(MMYOLO_N, epochs=5))
    assert plain.startswith('5 epochs;') and 'distilling' not in plain


def test_epochs_wins_over_cfg_options_and_is_checked():
    cfg = prepare_train_cfg(KD_OUT_S2N, epochs=7,
                            cfg_options={'train_cfg.max_epochs': 3})
    assert cfg.train_cfg.max_epochs == 7
    with pytest.raises(ConfigError, match='at least 1 epoch'):
        prepare_train_cfg(KD_OUT_S2N, epochs=0)
