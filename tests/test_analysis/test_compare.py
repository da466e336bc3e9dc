"""compare_checkpoints: bad input is refused by name before any evaluation starts."""
import pytest
import torch

from mmkd_yolo.analysis import compare_checkpoints, default_names
from mmkd_yolo.analysis.compare import img_size_of
from mmkd_yolo.apis.test import load_test_cfg
from mmkd_yolo.errors import CheckpointError, ConfigError, DataError
from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.registry import MODELS

from ..conftest import STUDENT_N, TEACHER_S


def save_student(path, num_classes=8, meta=None, config=STUDENT_N):
    cfg = load_detector_cfg(config)
    cfg.bbox_head.head_module.num_classes = num_classes
    torch.manual_seed(0)
    ckpt = {'state_dict': MODELS.build(cfg).state_dict()}
    if meta:
        ckpt['meta'] = meta
    torch.save(ckpt, path)
    return str(path)


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp('compare_ckpts')
    return dict(
        plain=save_student(root / 'plain.pth'),
        s=save_student(root / 's.pth', config=TEACHER_S),
        three=save_student(root / 'three.pth', num_classes=3),
        other_data=save_student(root / 'other.pth', meta=dict(dataset_meta=dict(
            classes=tuple('abcdefgh')))))


@pytest.fixture
def in_shapes(shapes_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(shapes_dir)
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    return tmp_path


def compare(models, out):
    return compare_checkpoints(models, str(out / 'out'))


def test_missing_config_and_checkpoint_named(in_shapes, ckpts):
    with pytest.raises(ConfigError, match=r"^b: config file '.*nope.py' does not exist"):
        compare([('a', STUDENT_N, ckpts['plain']), ('b', 'nope.py', ckpts['plain'])],
                in_shapes)
    with pytest.raises(CheckpointError, match=r"^b: checkpoint '.*none.pth' does not exist"):
        compare([('a', STUDENT_N, ckpts['plain']), ('b', STUDENT_N, 'none.pth')], in_shapes)


def test_other_class_count_named(in_shapes, ckpts):
    with pytest.raises(CheckpointError, match=r'^b: detector checkpoint .*three.pth .* '
                       r'predicts 3 classes, the val set .*val.json has 8 \(square, circle'):
        compare([('a', STUDENT_N, ckpts['plain']), ('b', STUDENT_N, ckpts['three'])],
                in_shapes)
    assert not (in_shapes / 'out').exists()  # refused before anything ran


def test_checkpoint_of_another_architecture_named(in_shapes, ckpts):
    with pytest.raises(CheckpointError, match=r'^b: detector checkpoint .*s.pth .* does not '
                       r'fit the detector of .*yolov5_n.*of other shape'):
        compare([('a', STUDENT_N, ckpts['plain']), ('b', STUDENT_N, ckpts['s'])], in_shapes)


def test_other_data_set_named(in_shapes, ckpts):
    with pytest.raises(CheckpointError, match=r'^b: .* trained on other classes \(a, b, c, '
                       r'd, e, \.\.\. \(\+3\)\) than the val set .* has \(square, circle'):
        compare([('a', STUDENT_N, ckpts['plain']), ('b', STUDENT_N, ckpts['other_data'])],
                in_shapes)


def test_val_set_without_labels_named(in_shapes, ckpts, shapes_dir):
    images = in_shapes / 'unlabelled' / 'images' / 'val'
    images.mkdir(parents=True)
    for src in sorted((shapes_dir / 'data' / 'shapes' / 'val').iterdir()):
        (images / src.name).write_bytes(src.read_bytes())
    data = in_shapes / 'unlabelled' / 'data.yaml'
    data.write_text(f'path: {in_shapes / "unlabelled"}\ntrain: images/val\nval: images/val\n'
                    'names: [square, circle, triangle, diamond, ring, cross, star, hexagon]\n')
    with pytest.raises(DataError, match=r'has no labels \(4 images, 0 boxes\).*label files'):
        compare_checkpoints([('a', STUDENT_N, ckpts['plain']), ('b', STUDENT_N,
                                                               ckpts['plain'])],
                            str(in_shapes / 'out'), data=str(data))


def test_different_val_sets_and_sizes_named(in_shapes, ckpts):
    other_val = in_shapes / 'other_val.py'
    other_val.write_text(f"_base_ = '{STUDENT_N}'\n"
                         "test_evaluator = dict(ann_file='elsewhere/val.json')\n")
    with pytest.raises(ConfigError, match=r'test on different val sets \(a: .*data/shapes/'
                       r'annotations/val.json; b: .*elsewhere/val.json\): give --data'):
        compare([('a', STUDENT_N, ckpts['plain']), ('b', str(other_val), ckpts['plain'])],
                in_shapes)
    small = in_shapes / 'small.py'
    small.write_text(f"_base_ = '{STUDENT_N}'\n"
                     "test_dataloader = dict(dataset=dict(pipeline=[\n"
                     "    dict(type='LoadImageFromFile'),\n"
                     "    dict(type='mmyolo.YOLOv5KeepRatioResize', scale=(96, 96))]))\n")
    assert img_size_of(load_test_cfg(str(small))) == 96
    with pytest.raises(ConfigError, match=r"different sizes \(\{'a': 160, 'b': 96\} px\): "
                       'give --img-size'):
        compare([('a', STUDENT_N, ckpts['plain']), ('b', str(small), ckpts['plain'])],
                in_shapes)


def test_two_distinct_models_needed(in_shapes, ckpts):
    with pytest.raises(ConfigError, match='two or more checkpoints'):
        compare([('a', STUDENT_N, ckpts['plain'])], in_shapes)
    with pytest.raises(ConfigError, match='not distinct: give --names'):
        compare([('a b', STUDENT_N, ckpts['plain']), ('a_b', STUDENT_N, ckpts['plain'])],
                in_shapes)


def test_default_names():
    assert default_names(['w/plain.pth', 'w/kd.pth']) == ['plain', 'kd']
    assert default_names(['a/epoch_3.pth', 'b/epoch_3.pth']) == ['a/epoch_3', 'b/epoch_3']
