"""tools/deployment/export_onnx.py, onnx_test.py and tools/infer.py from the command line."""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
import torch

from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.registry import MODELS

from ..conftest import REPO, STUDENT_N
from ..helpers.self_labels import well_posed_head
from .test_train import run_tool

pytestmark = pytest.mark.slow  # subprocesses

TEST_OPTS = ['--cfg-options', 'test_dataloader.num_workers=0',
             'test_dataloader.persistent_workers=False']


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = MODELS.build(load_detector_cfg(STUDENT_N))
    well_posed_head(model)  # its own detections make well-posed labels (see below)
    path = tmp_path_factory.mktemp('deploy') / 'n.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def metrics(out):
    return dict(re.findall(r'(coco/bbox_mAP\w*): ([\d.-]+)', out))


def shapes_val_yaml(shapes_dir, root, ann_file=None):
    """The generated shapes val set in Ultralytics form (images/, labels/, data.yaml),
    labelled from ``ann_file`` (default: the generated labels)."""
    from mmkd_yolo.datasets import SHAPES_CLASSES
    src = shapes_dir / 'data' / 'shapes'
    with open(ann_file or src / 'annotations' / 'val.json') as f:
        coco = json.load(f)
    (root / 'images' / 'val').mkdir(parents=True)
    (root / 'labels' / 'val').mkdir(parents=True)
    for img in coco['images']:
        shutil.copy(src / 'val' / img['file_name'], root / 'images' / 'val')
        lines = []
        for ann in coco['annotations']:
            if ann['image_id'] == img['id']:
                x, y, w, h = ann['bbox']
                lines.append(f"{ann['category_id'] - 1} {(x + w / 2) / img['width']:.6f} "
                             f"{(y + h / 2) / img['height']:.6f} {w / img['width']:.6f} "
                             f"{h / img['height']:.6f}")
        name = osp.splitext(img['file_name'])[0] + '.txt'
        (root / 'labels' / 'val' / name).write_text('\n'.join(lines) + '\n')
    data = root / 'data.yaml'
    data.write_text(f'path: {root}\ntrain: images/val\nval: images/val\n'
                    f'names: {list(SHAPES_CLASSES)}\n')
    return str(data)


def test_export_then_onnx_test_prints_what_test_py_prints(shapes_dir, tmp_path, checkpoint):
    """onnx_test.py prints what tools/test.py prints, on val labels that are the model's
    own top detections (tests/helpers/self_labels.py): both must score ~1, so equal
    numbers are not two zeros."""
    from mmkd_yolo.fileio import load_checkpoint_file

    from ..helpers.self_labels import own_detections, relabel_coco
    env = dict(os.environ, MMKD_CACHE=str(tmp_path / 'cache'))
    src = shapes_dir / 'data' / 'shapes'
    images = sorted(str(p) for p in (src / 'val').iterdir())
    state = load_checkpoint_file(checkpoint)['state_dict']
    relabel_coco(str(src / 'annotations' / 'val.json'), str(src / 'val'),
                 own_detections(STUDENT_N, state, images), str(tmp_path / 'own.json'))
    data = shapes_val_yaml(shapes_dir, tmp_path / 'yolo', tmp_path / 'own.json')
    onnx_file = str(tmp_path / 'n.onnx')
    out = run_tool([osp.join(REPO, 'tools', 'deployment', 'export_onnx.py'), STUDENT_N,
                    checkpoint, '--out', onnx_file, '--img-size', '160', '--dynamic'],
                   cwd=shapes_dir)
    assert 'ONNX opset 17, checked by onnx.checker' in out
    assert "input  images: ['batch', 3, 'height', 'width']" in out
    assert "output scores: ['batch', 'anchors'," in out
    ref = run_tool([osp.join(REPO, 'tools', 'test.py'), STUDENT_N, checkpoint, '--data', data,
                    '--work-dir', str(tmp_path / 'test')] + TEST_OPTS, cwd=shapes_dir, env=env)
    got = run_tool([osp.join(REPO, 'tools', 'deployment', 'onnx_test.py'), onnx_file,
                    '--data', data, '--work-dir', str(tmp_path / 'onnx_test')],
                   cwd=shapes_dir, env=env)
    assert len(metrics(ref)) == 6 and metrics(got) == metrics(ref), (metrics(got), metrics(ref))
    assert float(metrics(ref)['coco/bbox_mAP']) > 0.9, metrics(ref)
    # the file names no test set: without --data, onnx_test.py says what to pass
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'deployment',
                                                    'onnx_test.py'), onnx_file],
                          cwd=shapes_dir, capture_output=True, text=True)
    assert proc.returncode != 0 and 'pass --data DATA_YAML' in proc.stderr, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr


def test_infer_with_checkpoint_and_onnx(shapes_dir, tmp_path, checkpoint):
    val = shapes_dir / 'data' / 'shapes' / 'val'
    onnx_file = str(tmp_path / 'e2e.onnx')
    run_tool([osp.join(REPO, 'tools', 'deployment', 'export_onnx.py'), STUDENT_N, checkpoint,
              '--out', onnx_file, '--img-size', '160', '--nms', '--score-thr', '0.01'],
             cwd=shapes_dir)
    results = {}
    for name, args in (('torch', [STUDENT_N, checkpoint, str(val)]),
                       ('onnx', [onnx_file, str(val / '*.jpg')])):
        out_dir = tmp_path / name
        out = run_tool([osp.join(REPO, 'tools', 'infer.py')] + args +
                       ['--out', str(out_dir), '--score-thr', '0.05'], cwd=shapes_dir)
        assert f'detections.json in {out_dir}' in out
        with open(out_dir / 'detections.json') as f:
            results[name] = json.load(f)
        assert len(results[name]) == 4
        assert all((out_dir / osp.basename(p)).is_file() for p in results[name])
    torch_dets = [d for dets in results['torch'].values() for d in dets]
    onnx_dets = [d for dets in results['onnx'].values() for d in dets]
    assert torch_dets and onnx_dets
    assert set(torch_dets[0]) == {'bbox', 'score', 'label', 'class'}
    assert torch_dets[0]['class'] in [str(c) for c in
                                      __import__('mmengine').Config.fromfile(STUDENT_N).class_name]
    # the end-to-end graph's NMS (0.45 IoU) is not the config's (0.65): compare the best
    top = lambda dets: max(d['score'] for d in dets)
    assert abs(top(torch_dets) - top(onnx_dets)) < 1e-3


def test_export_mmyolo_config_without_data_then_infer(tmp_path):
    """The README's export of mmyolo's own COCO config, without --data: the file carries
    the 80 COCO class names and tools/infer.py runs on it."""
    import cv2
    import numpy as np
    from mmdet.datasets import CocoDataset
    config = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'
    torch.manual_seed(0)
    model = MODELS.build(load_detector_cfg(config))
    ckpt = tmp_path / 'yolov5n_mmyolo.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    onnx_file = tmp_path / 'n.onnx'
    out = run_tool([osp.join(REPO, 'tools', 'deployment', 'export_onnx.py'), config, str(ckpt),
                    '--out', str(onnx_file), '--img-size', '64'], cwd=tmp_path)
    assert "output scores: [1, 252, 80]" in out
    from mmkd_yolo.deploy import read_meta
    classes = read_meta(str(onnx_file))['classes']
    assert classes == list(CocoDataset.METAINFO['classes']) and len(classes) == 80
    image = tmp_path / 'img.jpg'
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    out_dir = tmp_path / 'out'
    run_tool([osp.join(REPO, 'tools', 'infer.py'), str(onnx_file), str(image), '--out',
              str(out_dir), '--score-thr', '0'], cwd=tmp_path)
    assert (out_dir / 'img.jpg').is_file()
    with open(out_dir / 'detections.json') as f:
        dets = json.load(f)[str(image)]
    assert all(d['class'] in classes for d in dets)


def test_infer_same_basename_in_two_folders(tmp_path, checkpoint):
    """a/1.jpg and b/1.jpg: two drawn images (a/1.jpg, b/1.jpg), two entries."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    images = []
    for folder in ('a', 'b'):
        (tmp_path / 'imgs' / folder).mkdir(parents=True)
        images.append(str(tmp_path / 'imgs' / folder / '1.jpg'))
        cv2.imwrite(images[-1], rng.integers(0, 255, (64, 64, 3), np.uint8))
    out_dir = tmp_path / 'out'
    run_tool([osp.join(REPO, 'tools', 'infer.py'), STUDENT_N, checkpoint] + images +
             ['--out', str(out_dir)], cwd=tmp_path)
    drawn = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob('*.jpg'))
    assert drawn == ['a/1.jpg', 'b/1.jpg']
    with open(out_dir / 'detections.json') as f:
        assert sorted(json.load(f)) == images


def test_infer_without_images_is_a_clear_error(shapes_dir, tmp_path, checkpoint):
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'infer.py'), STUDENT_N,
                           checkpoint, str(tmp_path / 'none' / '*.jpg'), '--out',
                           str(tmp_path / 'o')], cwd=shapes_dir, capture_output=True, text=True)
    assert proc.returncode != 0 and 'error: no images found' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_infer_never_writes_over_the_images(tmp_path, checkpoint):
    """The command that overwrote the user's images, tools/infer.py IMAGES --out IMAGES:
    the images keep their bytes and the drawings go to a new IMAGES2; --exist-ok into
    IMAGES is refused by name; without --out, work_dirs/infer."""
    import hashlib

    import cv2
    import numpy as np
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(images / f'{i}.jpg'), rng.integers(0, 255, (64, 64, 3), np.uint8))

    def checksums():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in images.iterdir()}
    before = checksums()
    infer = [osp.join(REPO, 'tools', 'infer.py'), STUDENT_N, checkpoint, str(images)]
    out = run_tool(infer + ['--out', str(images), '--score-thr', '0'], cwd=tmp_path)
    assert checksums() == before
    assert f'detections.json in {images}2' in out
    assert sorted(os.listdir(tmp_path / 'images2')) == ['0.jpg', '1.jpg', '2.jpg',
                                                       'detections.json']
    proc = subprocess.run([sys.executable] + infer + ['--out', str(images), '--exist-ok'],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert 'would write a drawn image over the input image' in proc.stderr
    assert checksums() == before and sorted(os.listdir(tmp_path)) == ['images', 'images2']
    run_tool(infer, cwd=tmp_path)
    assert sorted(os.listdir(tmp_path / 'work_dirs' / 'infer')) == [
        '0.jpg', '1.jpg', '2.jpg', 'detections.json']


def test_a_model_that_detects_nothing_scores_zero(shapes_dir, tmp_path):
    """tools/test.py and onnx_test.py print every coco/bbox_* number, at 0.0, with a
    one-line warning, for a model without a single detection (mmdet's metric: an ERROR
    line and no number)."""
    torch.manual_seed(0)
    model = MODELS.build(load_detector_cfg(STUDENT_N))
    for conv in model.bbox_head.head_module.convs_pred:
        conv.bias.data.fill_(-30.0)  # objectness and class scores ~1e-13: nothing passes
    ckpt = tmp_path / 'blind.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    data = shapes_val_yaml(shapes_dir, tmp_path / 'yolo')
    env = dict(os.environ, MMKD_CACHE=str(tmp_path / 'cache'))
    onnx_file = str(tmp_path / 'blind.onnx')
    run_tool([osp.join(REPO, 'tools', 'deployment', 'export_onnx.py'), STUDENT_N, str(ckpt),
              '--out', onnx_file, '--img-size', '160', '--dynamic'], cwd=shapes_dir)
    for tool in ([osp.join(REPO, 'tools', 'test.py'), STUDENT_N, str(ckpt), '--data', data,
                  '--work-dir', str(tmp_path / 'test')] + TEST_OPTS,
                 [osp.join(REPO, 'tools', 'deployment', 'onnx_test.py'), onnx_file, '--data',
                  data, '--work-dir', str(tmp_path / 'onnx_test')]):
        out = run_tool(tool, cwd=shapes_dir, env=env)
        assert {k: float(v) for k, v in metrics(out).items()} == {key: 0.0 for key in (
            'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/bbox_mAP_s',
            'coco/bbox_mAP_m', 'coco/bbox_mAP_l')}, out[-3000:]
        assert 'no detection in any of the 4 images' in out
        assert 'is empty' not in out
