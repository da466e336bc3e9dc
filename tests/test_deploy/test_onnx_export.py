"""ONNX export: mmyolo's decoding, onnxruntime parity, NMS graph, the same predictions;
a model file is data (nothing in it runs) and stores no paths."""
import json

import numpy as np
import onnx
import pytest
import torch
from mmengine.config import Config

from mmkd_yolo.apis.detector import load_detector
from mmkd_yolo.apis.inference import detect
from mmkd_yolo.apis.onnx_detector import (export_detector_onnx, load_onnx_detector,
                                          onnx_test_cfg, onnx_test_runner)
from mmkd_yolo.deploy import YOLOv5ExportModel, read_meta
from mmkd_yolo.deploy.onnx_export import META_KEY
from mmkd_yolo.errors import CheckpointError, ConfigError, DataError
from mmkd_yolo.models.detector_cfg import load_detector_cfg
from mmkd_yolo.registry import MODELS

from ..conftest import STUDENT_N
from ..test_datasets.test_yolo_data import make_yolo_tree


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


@pytest.mark.slow  # an ONNX export at two sizes
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


@pytest.mark.slow  # an ONNX export with NMS in the graph
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


@pytest.mark.slow  # an ONNX export and a detection run
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


def _with_meta(src, dst, meta):
    """A copy of the ONNX file ``src`` whose metadata is ``meta`` (as JSON)."""
    proto = onnx.load(src)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(proto, dst)
    return str(dst)


def test_model_file_runs_nothing(checkpoint, tmp_path, monkeypatch):
    """Opening a model file runs nothing from it: an older file's Python config (code,
    custom_imports) is refused unread, and a JSON protocol naming a type outside the
    allow-lists (a transform, an eval()-ed NMS name, custom_imports) is refused."""
    marker, imported = tmp_path / 'config_ran', tmp_path / 'module_imported'
    (tmp_path / 'evil_onnx_module.py').write_text(
        f'open({str(imported)!r}, "w").write("imported")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    good = str(tmp_path / 'good.onnx')
    export_detector_onnx(STUDENT_N, checkpoint, good, img_size=64)

    # an older export: its protocol as Python config text, which would run on reading
    old = dict(classes=['a', 'b'], img_size=64, batch=1, dynamic=False, nms=None,
               config=(f'_ = open({str(marker)!r}, "w").write("ran")\n'
                       "custom_imports = dict(imports=['evil_onnx_module'])\n"))
    old_file = _with_meta(good, tmp_path / 'old.onnx', old)
    for load in (onnx_test_cfg, load_onnx_detector):
        with pytest.raises(CheckpointError, match='(?s)nothing from it was run.*Re-export'):
            load(old_file)
    assert not marker.exists() and not imported.exists()

    meta = read_meta(good)

    def crafted(name, edit):
        protocol = json.loads(json.dumps(meta['protocol']))
        edit(protocol)
        return _with_meta(good, tmp_path / f'{name}.onnx', dict(meta, protocol=protocol))

    shell = f"__import__('os').system('touch {marker}')"
    cases = [
        (crafted('transform', lambda p: p['dataset']['pipeline'][1].update(type='EvilResize')),
         "unknown transform type 'EvilResize'"),
        (crafted('scoped', lambda p: p['dataset']['pipeline'][0].update(
            type='evil.LoadImageFromFile')), "unknown transform type 'evil.LoadImageFromFile'"),
        (crafted('nms', lambda p: p['test_cfg']['nms'].update(type=shell)),
         'unknown NMS type'),
        (crafted('metric', lambda p: p['evaluator'].update(type='EvilMetric')),
         "unknown metric type 'EvilMetric'"),
        (crafted('nested', lambda p: p['data_preprocessor'].update(
            batch_augments=[dict(type='EvilAugment')])), "unknown type 'EvilAugment'"),
        (crafted('imports', lambda p: p.update(
            custom_imports=dict(imports=['evil_onnx_module']))), 'unknown entries'),
    ]
    for path, message in cases:
        for load in (onnx_test_cfg, load_onnx_detector):
            with pytest.raises(CheckpointError, match='nothing from the file was run') as e:
                load(path)
            assert message in str(e.value), (path, str(e.value))
    assert not marker.exists() and not imported.exists()
    load_onnx_detector(good)  # the untouched protocol loads


@pytest.mark.slow  # an ONNX export
def test_exported_file_stores_no_paths(tmp_path, tmp_path_factory, monkeypatch):
    """No path of the exporting machine (checkpoint, data.yaml, annotation cache) is in
    the file; the test set is given when testing (--data) and evaluates as before."""
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    data = make_yolo_tree(tmp_path / 'data', {'a': '0 0.5 0.5 0.5 0.5\n',
                                              'b': '1 0.3 0.3 0.2 0.4\n'})
    other = load_detector_cfg(STUDENT_N)
    other.bbox_head.head_module.num_classes = 2
    ckpt = tmp_path / 'two.pth'
    torch.save({'state_dict': MODELS.build(other).state_dict()}, ckpt)
    out = str(tmp_path / 'two.onnx')
    export_detector_onnx(STUDENT_N, str(ckpt), out, img_size=64, dynamic=True, data=data)
    meta = read_meta(out)
    assert meta['classes'] == ['cat', 'dog']
    assert 'config' not in meta and 'checkpoint' not in meta
    roots = {str(tmp_path_factory.getbasetemp()), str(tmp_path)}

    def strings(node):
        if isinstance(node, dict):
            for k, v in node.items():
                yield k
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node
    found = list(strings(meta))
    assert found
    bad = [s for s in found if s.startswith('/') or any(r in s for r in roots)
           or s.endswith(('.json', '.pth', '.yaml'))]
    assert not bad, bad
    with pytest.raises(DataError, match='pass --data DATA_YAML'):
        onnx_test_runner(out, work_dir=str(tmp_path / 'w'))
    cfg, _ = onnx_test_cfg(out, data=data)
    dataset = cfg.test_dataloader.dataset
    assert dataset.ann_file == cfg.test_evaluator.ann_file and dataset.ann_file.endswith('.json')
    assert dataset.metainfo.classes == ('cat', 'dog')
