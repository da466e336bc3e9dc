"""ONNX export: mmyolo's decoding, onnxruntime parity, NMS graph, the same predictions."""
import numpy as np
import onnx
import pytest
import torch
from mmengine.config import Config

from mmkd_yolo.apis.deploy import (detect, export_detector_onnx, load_detector,
                                   load_onnx_detector, onnx_test_cfg)
from mmkd_yolo.deploy import YOLOv5ExportModel
from mmkd_yolo.errors import CheckpointError, ConfigError
from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.registry import MODELS

from ..conftest import STUDENT_N


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A YOLOv5-n of the shapes config with non-trivial BN statistics and head biases
    (so that many boxes pass the score threshold)."""
    torch.manual_seed(0)
    model = MODELS.build(load_detector_cfg(STUDENT_N))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    for conv in model.bbox_head.head_module.convs_pred:
        conv.bias.data.uniform_(-2.0, 0.5)
    path = tmp_path_factory.mktemp('onnx') / 'n.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def detector(checkpoint):
    return load_detector(STUDENT_N, checkpoint)


def test_decoding_is_mmyolos(detector):
    """The traced decoding gives mmyolo's boxes and scores (its priors and coder)."""
    head = detector.bbox_head
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        boxes, scores = YOLOv5ExportModel(detector).decoded(x)
        cls, box, obj = head.head_module(detector.extract_feat(x))
    sizes = [c.shape[2:] for c in cls]
    priors = torch.cat(head.prior_generator.grid_priors(sizes, device='cpu'))
    strides = torch.cat([priors.new_full((s.numel() * head.num_base_priors, ), stride)
                         for s, stride in zip(sizes, head.featmap_strides)])
    flat = lambda ts, k: torch.cat([t.permute(0, 2, 3, 1).reshape(2, -1, k) for t in ts], 1)
    ref_boxes = head.bbox_coder.decode(priors[None], flat(box, 4), strides)
    ref_scores = flat(cls, head.num_classes).sigmoid() * flat(obj, 1).sigmoid()
    torch.testing.assert_close(boxes, ref_boxes, rtol=0, atol=1e-4)
    torch.testing.assert_close(scores, ref_scores, rtol=0, atol=1e-6)


def test_onnxruntime_equals_pytorch(detector, checkpoint, tmp_path):
    """Decoded boxes and scores of onnxruntime within 1e-4 of PyTorch's, a few images,
    at the export size and (dynamic graph) at another one. Random weights give boxes of
    hundreds of pixels, where float32 itself steps by ~3e-5: boxes get a relative
    tolerance of 1e-6 on top (a few float32 steps)."""
    import onnxruntime as ort
    out = str(tmp_path / 'n.onnx')
    sig = export_detector_onnx(STUDENT_N, checkpoint, out, img_size=128, dynamic=True)
    assert sig['inputs'] == [('images', ['batch', 3, 'height', 'width'])]
    assert [name for name, _ in sig['outputs']] == ['boxes', 'scores']
    onnx.checker.check_model(onnx.load(out))
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    export = YOLOv5ExportModel(detector).eval()
    torch.manual_seed(1)
    for shape in ((3, 3, 128, 128), (1, 3, 160, 96)):
        x = torch.rand(shape)
        with torch.no_grad():
            boxes, scores = export(x)
        ort_boxes, ort_scores = session.run(None, {'images': x.numpy()})
        assert ort_boxes.shape == tuple(boxes.shape) and ort_scores.shape == tuple(scores.shape)
        np.testing.assert_allclose(ort_boxes, boxes.numpy(), rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(ort_scores, scores.numpy(), rtol=0, atol=1e-4)


def test_static_graph_and_stored_protocol(checkpoint, tmp_path):
    out = str(tmp_path / 'static.onnx')
    sig = export_detector_onnx(STUDENT_N, checkpoint, out, img_size=96, batch=2)
    assert sig['inputs'] == [('images', [2, 3, 96, 96])]
    n = 3 * (12 * 12 + 6 * 6 + 3 * 3)
    assert sig['outputs'] == [('boxes', [2, n, 4]), ('scores', [2, n, 8])]
    cfg, meta = onnx_test_cfg(out)
    assert meta['classes'] == list(Config.fromfile(STUDENT_N).class_name)
    assert cfg.model.type == 'ONNXRuntimeDetector'
    assert cfg.test_dataloader.dataset.batch_shapes_cfg is None  # square 96 px letterbox
    with pytest.raises(ConfigError, match='needs an export with --dynamic'):
        onnx_test_cfg(out, img_size=128)


def test_nms_graph_equals_eager(detector, checkpoint, tmp_path):
    """The end-to-end graph (ONNX NonMaxSuppression) keeps what the eager op keeps."""
    import onnxruntime as ort
    nms = dict(iou_threshold=0.45, score_threshold=0.05, max_per_class=20)
    out = str(tmp_path / 'nms.onnx')
    sig = export_detector_onnx(STUDENT_N, checkpoint, out, img_size=128, batch=2, nms=nms)
    assert sig['outputs'] == [('detections', ['num_detections', 7])]
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        ref = YOLOv5ExportModel(detector, nms=nms)(x)
    got = ort.InferenceSession(out).run(None, {'images': x.numpy()})[0]
    assert len(ref) > 10 and got.shape == tuple(ref.shape)
    order = lambda d: d[np.lexsort((d[:, 5], d[:, 6], d[:, 0]))]
    np.testing.assert_allclose(order(got), order(ref.numpy()), rtol=1e-6, atol=1e-4)


def test_onnx_detector_predicts_as_pytorch(checkpoint, shapes_dir, tmp_path):
    """Same images through mmdet's inference path: the ONNX model's final detections
    (after mmyolo's post-processing) are the PyTorch model's."""
    out = str(tmp_path / 'n.onnx')
    export_detector_onnx(STUDENT_N, checkpoint, out, img_size=64, dynamic=True)
    onnx_model = load_onnx_detector(out)
    detector = load_detector(STUDENT_N, checkpoint, img_size=64)
    images = sorted(str(p) for p in (shapes_dir / 'data' / 'shapes' / 'val').glob('*.jpg'))
    assert images
    for (_, ref), (_, got) in zip(detect(detector, images), detect(onnx_model, images)):
        assert len(ref) > 0 and len(got) == len(ref)
        # one-to-one, in any order (equal scores may swap places); near the max_per_img
        # cut, scores equal to 1e-6 may fall either side of it: compare above it
        free = list(range(len(got)))
        above = ref.scores > ref.scores.min() + 1e-3
        assert above.sum() > 10
        for box, score, label in zip(ref.bboxes[above], ref.scores[above],
                                     ref.labels[above]):
            match = [j for j in free if got.labels[j] == label
                     and abs(got.scores[j] - score) < 1e-4
                     and (got.bboxes[j] - box).abs().max() < 1e-3]
            assert match, (box, score, label)
            free.remove(match[0])


def test_bad_inputs_are_named(checkpoint, tmp_path):
    plain = tmp_path / 'plain.onnx'
    x = torch.nn.Conv2d(3, 1, 1)
    torch.onnx.export(x, (torch.rand(1, 3, 8, 8), ), str(plain), dynamo=False)
    with pytest.raises(CheckpointError, match='carries no test protocol'):
        onnx_test_cfg(str(plain))
    with pytest.raises(CheckpointError, match='does not exist'):
        onnx_test_cfg(str(tmp_path / 'missing.onnx'))
    with pytest.raises(ConfigError, match='multiple of 32'):
        export_detector_onnx(STUDENT_N, checkpoint, str(tmp_path / 'x.onnx'), img_size=100)
    other = load_detector_cfg(STUDENT_N)
    other.bbox_head.head_module.num_classes = 3
    wrong = tmp_path / 'wrong.pth'
    torch.save({'state_dict': MODELS.build(other).state_dict()}, wrong)
    with pytest.raises(CheckpointError, match='does not fit the detector'):
        load_detector(STUDENT_N, str(wrong))
