"""Val labels made of a detector's own top detections: a test set that its weights score
~1 on and any other weights ~0, so that comparisons of mAP are far from zero.

A near-random model scores ~0 on real labels, and two zeros are equal whatever was
evaluated. Here the labels *are* the model's predictions (its best detections, after its
own NMS, above a score threshold common to all images), computed by mmdet's plain
inference path with weights loaded by ``load_state_dict(strict=True)``, independently of
the package's checkpoint handling.
Evaluating the same weights through any tool must give mAP ~1; evaluating other weights
(random, another model's, a half-loaded model) gives far less. (Weights that differ
little, such as the raw and EMA weights after a few iterations, may score alike: tell
those apart with a unit test.)
"""
import json
import os
import os.path as osp
from typing import Dict, List

import torch


def well_posed_head(model: torch.nn.Module) -> torch.nn.Module:
    """Give a (random) YOLOv5 detector confident, anchor-sized boxes, in place.

    A random head predicts slivers a fraction of a pixel high with near-equal scores:
    poor labels (IoU of near-empty boxes, ties in ranking). Here objectness and class
    biases spread over [-4, 0] and the box outputs stay near their anchors at the cell
    centres (weights scaled down, biases 0), so the model's own top detections are
    well-separated boxes of a few pixels to a dozen.
    """
    head = model.bbox_head.head_module
    with torch.no_grad():
        for conv in head.convs_pred:
            conv.bias.uniform_(-4.0, 0.0)
            box = torch.cat([torch.arange(4) + a * (5 + head.num_classes)
                             for a in range(head.num_base_priors)])
            conv.weight[box] *= 0.05
            conv.bias[box] = 0.0
    return model


def own_detections(config: str, state_dict: Dict[str, torch.Tensor], images: List[str],
                   per_image: int = 4, min_gap: float = 1e-4) -> Dict[str, list]:
    """``{image: [(label, x1, y1, x2, y2), ...]}``: the detector's best boxes.

    COCO's AP ranks the detections of a class over all images, so the labels are every
    detection above one score threshold for all images (not the top few of each image,
    which another image's higher-scoring extra detection would outrank). The threshold
    sits in a gap of at least ``min_gap`` between consecutive scores, so that rounding
    differences between inference paths (batching, onnxruntime) cannot reorder labels
    and non-labels; the largest such set of at most ``per_image`` x images is taken.
    """
    import warnings

    from mmdet.apis import inference_detector, init_detector
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmkd_yolo.models.detector_cfg import package_config_path
    cfg = Config.fromfile(package_config_path(config) if '::' in config else config)
    scope = cfg.get('default_scope', 'mmyolo')
    # init_detector sets the global default scope; restored after, for the tests that follow
    with DefaultScope.overwrite_default_scope(scope), warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='checkpoint is None')
        model = init_detector(cfg, None, device='cpu')
    model.load_state_dict(state_dict, strict=True)
    ranked = []
    with torch.no_grad(), DefaultScope.overwrite_default_scope(scope):
        for path in images:
            pred = inference_detector(model, path).pred_instances
            ranked += [(float(pred.scores[i]), path, int(pred.labels[i]),
                        *[float(v) for v in pred.bboxes[i]]) for i in range(len(pred))]
    ranked.sort(key=lambda r: -r[0])
    limit = min(per_image * len(images), len(ranked) - 1)
    cuts = [c for c in range(1, limit + 1) if ranked[c - 1][0] - ranked[c][0] >= min_gap]
    assert cuts, f'no gap of {min_gap} among the top {limit} scores: {ranked[:limit + 1]}'
    out = {path: [] for path in images}
    for _, path, *det in ranked[:cuts[-1]]:
        out[path].append(tuple(det))
    return out


def relabel_coco(ann_file: str, image_dir: str, detections: Dict[str, list],
                 out_file: str) -> None:
    """A copy of a COCO json whose annotations are ``detections`` (by file name; an
    image without any is kept as a background image)."""
    with open(ann_file) as f:
        coco = json.load(f)
    anns = []
    for img in coco['images']:
        for label, x1, y1, x2, y2 in detections.get(osp.join(image_dir, img['file_name']), []):
            anns.append(dict(id=len(anns) + 1, image_id=img['id'],
                             category_id=coco['categories'][label]['id'],
                             bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1),
                             iscrowd=0))
    coco['annotations'] = anns
    os.makedirs(osp.dirname(out_file), exist_ok=True)
    with open(out_file, 'w') as f:
        json.dump(coco, f)


def self_labelled_shapes(shapes_dir, config: str, state_dict: Dict[str, torch.Tensor],
                         root) -> str:
    """A folder laid out as the shapes configs expect (``data/shapes/``), the generated
    images of ``shapes_dir`` with val labels = the detector's own detections."""
    src = osp.join(str(shapes_dir), 'data', 'shapes')
    dst = osp.join(str(root), 'data', 'shapes')
    os.makedirs(osp.join(dst, 'annotations'), exist_ok=True)
    for split in ('train', 'val'):
        os.symlink(osp.join(src, split), osp.join(dst, split))
    with open(osp.join(src, 'annotations', 'train.json')) as f_in, \
            open(osp.join(dst, 'annotations', 'train.json'), 'w') as f_out:
        f_out.write(f_in.read())
    val_dir = osp.join(src, 'val')
    images = sorted(osp.join(val_dir, f) for f in os.listdir(val_dir))
    relabel_coco(osp.join(src, 'annotations', 'val.json'), val_dir,
                 own_detections(config, state_dict, images),
                 osp.join(dst, 'annotations', 'val.json'))
    return str(root)
