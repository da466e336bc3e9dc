"""tools/deployment/export_onnx.py, onnx_test.py and tools/infer.py from the command line."""
import json
import os.path as osp
import re

import pytest
import torch

from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.registry import MODELS

from ..conftest import REPO, STUDENT_N
from .test_train import run_tool

pytestmark = pytest.mark.slow  # subprocesses

TEST_OPTS = ['--cfg-options', 'test_dataloader.num_workers=0',
             'test_dataloader.persistent_workers=False']


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = MODELS.build(load_detector_cfg(STUDENT_N))
    for conv in model.bbox_head.head_module.convs_pred:
        conv.bias.data.uniform_(-4.0, 0.0)
    path = tmp_path_factory.mktemp('deploy') / 'n.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def metrics(out):
    return dict(re.findall(r'(coco/bbox_mAP\w*): ([\d.-]+)', out))


def test_export_then_onnx_test_prints_what_test_py_prints(shapes_dir, tmp_path, checkpoint):
    onnx_file = str(tmp_path / 'n.onnx')
    out = run_tool([osp.join(REPO, 'tools', 'deployment', 'export_onnx.py'), STUDENT_N,
                    checkpoint, '--out', onnx_file, '--img-size', '160', '--dynamic'],
                   cwd=shapes_dir)
    assert 'ONNX opset 17, checked by onnx.checker' in out
    assert "input  images: ['batch', 3, 'height', 'width']" in out
    assert "output scores: ['batch', 'anchors'," in out
    ref = run_tool([osp.join(REPO, 'tools', 'test.py'), STUDENT_N, checkpoint, '--work-dir',
                    str(tmp_path / 'test')] + TEST_OPTS, cwd=shapes_dir)
    got = run_tool([osp.join(REPO, 'tools', 'deployment', 'onnx_test.py'), onnx_file,
                    '--work-dir', str(tmp_path / 'onnx_test')], cwd=shapes_dir)
    assert len(metrics(ref)) == 6 and metrics(got) == metrics(ref), (metrics(got), metrics(ref))


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


def test_infer_without_images_is_a_clear_error(shapes_dir, tmp_path, checkpoint):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'infer.py'), STUDENT_N,
                           checkpoint, str(tmp_path / 'none' / '*.jpg'), '--out',
                           str(tmp_path / 'o')], cwd=shapes_dir, capture_output=True, text=True)
    assert proc.returncode != 0 and 'error: no images found' in proc.stderr
    assert 'Traceback' not in proc.stderr
