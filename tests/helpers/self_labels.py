"""Val labels made of a detector's own top detections: a test set that its weights score
~1 on and any other weights ~0, so that comparisons of mAP are far from zero.

A near-random model scores ~0 on real labels, and two zeros are equal whatever was
evaluated. Here the labels *are* the model's predictions (its top ``top_k`` per image,
after its own NMS), computed by mmdet's plain inference path with weights loaded by
``load_state_dict(strict=True)``, independently of the package's checkpoint handling.
Evaluating the same weights through any tool must give mAP ~1; evaluating other weights
(random, raw instead of EMA, the teacher, a half-loaded model) gives far less.
"""
import json
import os
import os.path as osp
from typing import Dict, List

import torch


def own_detections(config: str, state_dict: Dict[str, torch.Tensor], images: List[str],
                   top_k: int = 4) -> Dict[str, list]:
    """``{image: [(label, x1, y1, x2, y2), ...]}``: the detector's ``top_k`` best boxes."""
    import warnings

    from mmdet.apis import inference_detector, init_detector
    from mmengine.config import Config

    from mmkd_yolo.models.detector_cfg import package_config_path
    cfg = Config.fromfile(package_config_path(config) if '::' in config else config)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='checkpoint is None')
        model = init_detector(cfg, None, device='cpu')  # sets the default scope
    model.load_state_dict(state_dict, strict=True)
    out = {}
    with torch.no_grad():
        for path in images:
            pred = inference_detector(model, path).pred_instances
            order = pred.scores.argsort(descending=True)[:top_k]
            out[path] = [(int(pred.labels[i]), *[float(v) for v in pred.bboxes[i]])
                         for i in order]
            assert out[path], f'no detection on {path}: raise the head biases'
    return out


def relabel_coco(ann_file: str, image_dir: str, detections: Dict[str, list],
                 out_file: str) -> None:
    """A copy of a COCO json whose annotations are ``detections`` (by file name)."""
    with open(ann_file) as f:
        coco = json.load(f)
    anns = []
    for img in coco['images']:
        for label, x1, y1, x2, y2 in detections[osp.join(image_dir, img['file_name'])]:
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
