"""tools/test.py's config: class-wise COCO metric, --json-prefix and --show-dir."""
import pytest

from mmkd_yolo.apis.test import load_test_cfg
from mmkd_yolo.errors import ConfigError

from ..conftest import STUDENT_N


def test_classwise_metric_and_json_prefix(tmp_path):
    cfg = load_test_cfg(STUDENT_N, work_dir=str(tmp_path / 'w'))
    assert cfg.test_evaluator.classwise is True
    assert cfg.test_evaluator.get('outfile_prefix') is None
    prefix = str(tmp_path / 'preds' / 'run')
    cfg = load_test_cfg(STUDENT_N, work_dir=str(tmp_path / 'w'), json_prefix=prefix)
    assert cfg.test_evaluator.outfile_prefix == prefix


def test_show_dir_turns_on_the_visualization_hook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_test_cfg(STUDENT_N, work_dir='w', show_dir='shown')
    hook = cfg.default_hooks.visualization
    assert hook.draw is True
    # absolute: the hook puts a relative folder under work_dir/<timestamp>/, again and
    # again at every batch
    assert hook.test_out_dir == str(tmp_path / 'shown')


def test_show_dir_without_visualization_hook_is_a_config_error(tmp_path):
    config = tmp_path / 'no_vis.py'
    config.write_text(f"_base_ = '{STUDENT_N}'\n"
                      "default_hooks = dict(visualization=None)\n")
    with pytest.raises(ConfigError, match='--show-dir needs a visualization hook'):
        load_test_cfg(str(config), work_dir=str(tmp_path), show_dir='x')
