"""The test protocol an ONNX file carries: types, keys, numbers and paths allow-listed, so
that a crafted file cannot make the test write files or ask for more than a test needs."""
import copy
import glob
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd_yolo.apis.config import detector_cfgs, load_config
from mmkd_yolo.apis.detector import TEST_KEYS
from mmkd_yolo.apis.onnx_detector import onnx_test_cfg
from mmkd_yolo.deploy.protocol import (MAX_IMG_SIZE, MAX_WORKERS, check_protocol,
                                       protocol_from_cfg)
from mmkd_yolo.errors import CheckpointError, ConfigError

from ..conftest import CONFIGS
from ..helpers.fuzz_inputs import onnx_model_bytes, valid_onnx_meta

def protocol_of(config: str) -> dict:
    """What export_onnx.py stores for ``config`` (as ``load_detector`` sets ``model.cfg``)."""
    cfg = load_config(config)
    test_cfg = Config({k: cfg[k] for k in TEST_KEYS if k in cfg})
    test_cfg.model = detector_cfgs(cfg)[0]
    return protocol_from_cfg(test_cfg)


#: Every config users run: the shipped ones (not the _base_ fragments) and mmyolo's YOLOv5.
USER_CONFIGS = sorted(p for p in glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True)
                      if '_base_' not in p) + [
    f'mmyolo::yolov5/yolov5_{s}-v61_syncbn_fast_8xb16-300e_coco.py' for s in 'nsmlx']


@pytest.mark.parametrize('config', USER_CONFIGS)
def test_shipped_and_mmyolo_protocols_pass(config):
    protocol = protocol_of(config)
    assert check_protocol(json.loads(json.dumps(protocol)), 'the file') == protocol


def crafted(edit):
    protocol = copy.deepcopy(valid_onnx_meta()['protocol'])
    edit(protocol)
    return protocol


@pytest.mark.parametrize('edit,message', [
    # the file: the COCO metric told to write its results anywhere
    (lambda p: p['evaluator'].update(format_only=True, outfile_prefix='/any/where'),
     "unknown entries ['format_only', 'outfile_prefix'] at evaluator"),
    (lambda p: p['evaluator'].update(outfile_prefix='results'),
     "unknown entries ['outfile_prefix'] at evaluator"),
    (lambda p: p['dataset']['pipeline'][0].update(backend_args=dict(backend='petrel')),
     "unknown entries ['backend_args'] at dataset.pipeline[0]"),
    (lambda p: p['env_cfg'].update(resource_limit=10**6),
     "unknown entries ['resource_limit'] at env_cfg"),
    (lambda p: p['dataloader'].update(num_workers=64),
     f'dataloader.num_workers = 64, outside [0, {MAX_WORKERS}]'),
    (lambda p: p['dataloader'].update(batch_size=2.5),
     'dataloader.batch_size = 2.5, outside [1, 256] or not a whole number'),
    (lambda p: p['test_cfg'].update(score_thr=float('nan')), 'test_cfg.score_thr = nan'),
    (lambda p: p['dataset']['pipeline'][1].update(scale=[10**5, 10**5]),
     f'dataset.pipeline[1].scale[0] = 100000, outside [1, {MAX_IMG_SIZE}]'),
    (lambda p: p['test_cfg']['nms'].update(iou_threshold=7),
     'test_cfg.nms.iou_threshold = 7, outside [0, 1]'),
    (lambda p: p['dataset']['pipeline'][1].update(pad_val=dict(img=114, evil=1)),
     "unknown entries ['evil'] at dataset.pipeline[1].pad_val"),
    (lambda p: p['test_cfg'].update(extra=dict(a=1)), "unknown entries ['extra'] at test_cfg"),
    (lambda p: p['dataloader']['sampler'].pop('type'),
     'a mapping without a type at dataloader.sampler'),
    (lambda p: p['dataset']['pipeline'][2].update(meta_keys=['img_id', '/etc/passwd']),
     "a path ('/etc/passwd') at dataset.pipeline[2].meta_keys[1]"),
    (lambda p: p['data_preprocessor'].update(std=[255, 255, 10**9]),
     'data_preprocessor.std[2] = 1000000000, outside [0.001, 255]'),
    (lambda p: p['env_cfg'].update(mp_cfg=dict(opencv_num_threads=1, mp_start_method='fork',
                                               answer=42)),
     "unknown entries ['answer'] at env_cfg.mp_cfg"),
])
def test_crafted_protocols_are_refused_by_name(edit, message):
    with pytest.raises(CheckpointError, match='nothing from the file was run') as info:
        check_protocol(crafted(edit), "'m.onnx'")
    assert message in str(info.value)
    # and a config asking for the same cannot be exported (a ConfigError, not a file)
    with pytest.raises(ConfigError, match='admits only the known'):
        check_protocol(crafted(edit), 'the config', exporting=True)


def test_crafted_file_writes_nothing(tmp_path, monkeypatch):
    """The issue's file: format_only and an outfile_prefix in the stored evaluator. It is
    refused when opened, before a Runner or metric exists; nothing is written."""
    monkeypatch.chdir(tmp_path)
    meta = valid_onnx_meta()
    meta['protocol']['evaluator'].update(format_only=True,
                                         outfile_prefix=str(tmp_path / 'out' / 'r'))
    path = tmp_path / 'm.onnx'
    path.write_bytes(onnx_model_bytes(meta))
    with pytest.raises(CheckpointError, match="unknown entries.*'outfile_prefix'"):
        onnx_test_cfg(str(path))
    assert sorted(os.listdir(tmp_path)) == ['m.onnx']


@pytest.mark.parametrize('key,value', [('img_size', MAX_IMG_SIZE + 32), ('batch', 10**6)])
def test_graph_sizes_beyond_any_test_are_refused(tmp_path, key, value):
    meta = dict(valid_onnx_meta(), **{key: value})
    path = tmp_path / 'm.onnx'
    path.write_bytes(onnx_model_bytes(meta))
    with pytest.raises(CheckpointError, match=f'img_size up to {MAX_IMG_SIZE}, batch up to'):
        onnx_test_cfg(str(path))


def test_stored_protocol_evaluates_with_a_number_for_no_detection(tmp_path):
    """onnx_test.py's evaluator is EmptySafeCocoMetric, its stored arguments kept."""
    path = tmp_path / 'm.onnx'
    path.write_bytes(onnx_model_bytes(valid_onnx_meta()))
    cfg, _ = onnx_test_cfg(str(path))
    stored = valid_onnx_meta()['protocol']['evaluator']
    assert cfg.test_evaluator == dict(stored, type='mmkd_yolo.EmptySafeCocoMetric')
    assert stored['type'] == 'mmdet.CocoMetric'
