"""An exported YOLOv5 ONNX file run by onnxruntime, as an mmdet-style detector."""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
from mmcv.ops import batched_nms
from mmdet.models.utils import filter_scores_and_topk
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from ..registry import MODELS


@MODELS.register_module()
class ONNXRuntimeDetector(BaseModel):
    """Runs an ``export_onnx`` file in onnxruntime behind mmdet's detector interface.

    ``test_step`` takes what the Runner's test loop and mmdet's ``inference_detector``
    give a PyTorch detector and returns ``DetDataSample`` s with ``pred_instances``, so
    the same test pipeline, data preprocessor and ``CocoMetric`` evaluate both. The
    post-processing after the graph is mmyolo's ``YOLOv5Head.predict_by_feat`` (score
    filter, ``nms_pre``, class-aware NMS, ``max_per_img``, undoing the letterbox): mmyolo
    runs it on the raw head outputs, which the exported graph has already decoded.

    Args:
        onnx_file (str): The exported model.
        test_cfg (dict): The detector's ``test_cfg`` (``multi_label``, ``score_thr``,
            ``nms_pre``, ``nms``, ``max_per_img``), ignored for end-to-end (``--nms``)
            graphs except ``max_per_img``.
        data_preprocessor (dict): The detector's data preprocessor.
        providers (list[str], optional): onnxruntime execution providers. Defaults to
            CUDA where available, then CPU.
    """

    def __init__(self, onnx_file: str, test_cfg: dict, data_preprocessor: dict,
                 providers: Optional[List[str]] = None) -> None:
        import onnxruntime as ort
        super().__init__(data_preprocessor=data_preprocessor)
        available = ort.get_available_providers()
        providers = providers or [p for p in ('CUDAExecutionProvider',
                                              'CPUExecutionProvider') if p in available]
        self.session = ort.InferenceSession(onnx_file, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.end_to_end = self.output_names == ['detections']
        self.test_cfg = ConfigDict(test_cfg)
        self._dummy = torch.nn.Parameter(torch.zeros(1))  # the Runner wants parameters

    def run(self, images: torch.Tensor) -> List[np.ndarray]:
        """The graph's outputs for preprocessed ``images`` (B, 3, H, W)."""
        feed = {self.input_name: images.detach().cpu().float().numpy()}
        return self.session.run(self.output_names, feed)

    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None,
                mode: str = 'predict') -> List[DetDataSample]:
        if mode != 'predict':
            raise NotImplementedError('an ONNX model only predicts (mode="predict").')
        outputs = self.run(inputs)
        for i, sample in enumerate(data_samples):
            if self.end_to_end:
                det = torch.from_numpy(outputs[0])
                det = det[det[:, 0] == i]
                det = det[det[:, 5].argsort(descending=True)][:self.test_cfg.max_per_img]
                results = InstanceData(bboxes=det[:, 1:5], scores=det[:, 5],
                                       labels=det[:, 6].long())
                results = self._rescale(results, sample.metainfo)
            else:
                results = self.post_process(torch.from_numpy(outputs[0][i]),
                                            torch.from_numpy(outputs[1][i]), sample.metainfo)
            sample.pred_instances = results
        return data_samples

    def post_process(self, boxes: torch.Tensor, scores: torch.Tensor,
                     img_meta: dict) -> InstanceData:
        """mmyolo's per-image post-processing of decoded predictions.

        Args:
            boxes (Tensor): (N, 4) x1y1x2y2 in input pixels.
            scores (Tensor): (N, C) ``sigmoid(cls) * sigmoid(obj)``.
            img_meta (dict): ``scale_factor``, ``pad_param``, ``ori_shape``.
        """
        cfg = self.test_cfg
        score_thr = cfg.get('score_thr', -1)
        nms_pre = cfg.get('nms_pre', 100000)
        if cfg.get('multi_label', True) and scores.shape[1] > 1:
            scores, labels, keep, _ = filter_scores_and_topk(scores, score_thr, nms_pre)
        else:
            scores, labels = scores.max(1, keepdim=True)
            scores, _, keep, kept = filter_scores_and_topk(
                scores, score_thr, nms_pre, results=dict(labels=labels[:, 0]))
            labels = kept['labels']
        results = InstanceData(scores=scores, labels=labels, bboxes=boxes[keep])
        results = self._rescale(results, img_meta, clamp=False)
        if len(results):
            _, keep = batched_nms(results.bboxes, results.scores, results.labels, cfg.nms)
            results = results[keep][:cfg.max_per_img]
        return self._clamp(results, img_meta)

    def _rescale(self, results: InstanceData, img_meta: dict,
                 clamp: bool = True) -> InstanceData:
        """Input pixels -> original image pixels (undo letterbox padding and resize)."""
        pad = img_meta.get('pad_param')
        if pad is not None:
            results.bboxes = results.bboxes - results.bboxes.new_tensor(
                [pad[2], pad[0], pad[2], pad[0]])
        results.bboxes = results.bboxes / results.bboxes.new_tensor(
            img_meta['scale_factor']).repeat((1, 2))
        return self._clamp(results, img_meta) if clamp else results

    @staticmethod
    def _clamp(results: InstanceData, img_meta: dict) -> InstanceData:
        h, w = img_meta['ori_shape'][:2]
        results.bboxes[:, 0::2].clamp_(0, w)
        results.bboxes[:, 1::2].clamp_(0, h)
        return results
