"""Seconds per training iteration: a YOLOv5-n student alone vs distilled, side by side.

    python benchmarks/kd_speed.py [--img 320] [--batch 16] [--rounds 5] [--iters 3]
    python benchmarks/kd_speed.py --loss [--img 320] [--batch 16]
    python benchmarks/kd_speed.py --profile [--classes 80]

Each variant (student alone; output distillation from an n or s teacher; output + CWD
features) runs the same real training step (forward, loss, backward, SGD step) on the
same preprocessed batch of generated images. Variants alternate round by round, so
machine noise hits all of them alike; the table gives the median seconds per iteration
and the ratio to the student alone, measured in this one run.

``--loss`` times the output-distillation losses alone (forward and backward) on random
head outputs of an 80-class YOLOv5 (COCO's class count: the class part is most of the
cost), against the same loss written the plain way (autograd through the element-wise KL,
mmyolo's ``bbox_overlaps`` for CIoU; what the previous release ran) and the YOLOv5
distillation scripts' raw-MSE loss.

``--profile`` shows where a distilled step spends its extra time: ``torch.profiler`` over
five steps each (alternating) of the student alone and of n <- n and n <- s, and the operators whose
self CPU time grows most. ``--classes 80`` gives all models COCO's class count (the
generated batch's labels are valid for it), as the loop benchmark's coco128 runs have.
"""
from __future__ import annotations

import argparse
import copy
import os.path as osp
import statistics
import sys
import tempfile
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

TAIL = 'v61_fast_1xb16-40e_shapes-160.py'
STUDENT = osp.join(REPO, 'configs', 'yolov5', f'yolov5_n-{TAIL}')
KD = osp.join(REPO, 'configs', 'distill', 'yolov5', 'kd-out{}_yolov5_{}-to-n-' + TAIL)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--img', type=int, default=320)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--iters', type=int, default=3, help='iterations per round')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--loss', action='store_true', help='time the losses alone')
    parser.add_argument('--profile', action='store_true',
                        help='operators that make the extra time of a distilled step')
    parser.add_argument('--classes', type=int, help='class count of all models')
    return parser.parse_args()


def make_batch(args, data_root):
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmkd_yolo.datasets import make_shapes_dataset
    make_shapes_dataset(data_root, num_train=args.batch, num_val=1, img_size=args.img, seed=0)
    cfg = Config.fromfile(STUDENT)
    loader = copy.deepcopy(cfg.train_dataloader)
    loader.update(batch_size=args.batch, num_workers=0, persistent_workers=False)
    loader.dataset.data_root = data_root
    for t in loader.dataset.pipeline:
        if t['type'] == 'Mosaic':
            t['img_scale'] = (args.img, args.img)
        if t['type'] == 'YOLOv5RandomAffine':
            t['border'] = (-args.img // 2, -args.img // 2)
    return next(iter(Runner.build_dataloader(loader, seed=0)))


def build_variants(device, classes=None, names=None):
    from mmkd_yolo.apis.config import detector_cfgs, load_config
    from mmkd_yolo.apis.data import _set_num_classes
    from mmkd_yolo.registry import MODELS
    raw_mse = dict(type='YOLOv5MSEOutputDistillLoss', loss_weight=10.0)
    variants = {}
    for name, cfg_path, loss in [
            ('student alone (n)', STUDENT, None),
            ('kd-out, n <- n', KD.format('', 'n'), None),
            ('kd-out with the scripts\' raw-MSE loss, n <- n', KD.format('', 'n'), raw_mse),
            ('kd-out, n <- s', KD.format('', 's'), None),
            ('kd-out-cwd, n <- s', KD.format('-cwd', 's'), None)]:
        if names and name not in names:
            continue
        cfg = load_config(cfg_path)
        for detector in detector_cfgs(cfg) if classes else []:
            _set_num_classes(detector, classes)
        if loss is not None:
            cfg.model.distiller.distill_losses.loss_out = loss
        variants[name] = MODELS.build(cfg.model)
    out = {}
    for name, model in variants.items():
        model.to(device).train()
        params = [p for p in model.parameters() if p.requires_grad]
        out[name] = (model, torch.optim.SGD(params, lr=1e-4, momentum=0.9))
    return out


def step(model, optim, batch):
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    optim.zero_grad()
    loss.backward()
    optim.step()


def loss_speed(args) -> None:
    """The ``--loss`` table."""
    import torch.nn.functional as F
    from mmyolo.models.dense_heads import YOLOv5Head
    from mmyolo.models.losses import bbox_overlaps

    from mmkd_yolo.losses import YOLOv5MSEOutputDistillLoss, YOLOv5OutputDistillLoss

    class ElementwiseOutputDistillLoss(YOLOv5OutputDistillLoss):
        """The same loss (same values), written the plain way: the baseline."""

        def forward(self, s_preds, t_preds):
            def kl(s, t):
                p = t.sigmoid()
                return F.softplus(s) - F.softplus(t) - p * (s - t)

            def decode(box, priors):
                p = box.permute(0, 1, 3, 4, 2).sigmoid()
                return torch.cat((p[..., :2] * 2 - 0.5,
                                  (p[..., 2:] * 2)**2 * priors[None, :, None, None, :]), -1)

            l_box = l_obj = l_cls = 0
            for i, (s_cls, s_box, s_obj, t_cls, t_box, t_obj) in enumerate(
                    zip(*s_preds, *t_preds)):
                n, a, h, w = s_obj.shape
                weight = t_obj.sigmoid()
                norm = weight.sum().clamp(min=1.0)
                l_obj = l_obj + kl(s_obj, t_obj).mean() * self.obj_level_weights[i]
                ciou = bbox_overlaps(
                    decode(s_box.view(n, a, 4, h, w), self.priors[i]).reshape(-1, 4),
                    decode(t_box.view(n, a, 4, h, w), self.priors[i]).reshape(-1, 4),
                    iou_mode='ciou', bbox_format='xywh')
                l_box = l_box + ((1 - ciou) * weight.reshape(-1)).sum() / norm
                nc = s_cls.shape[1] // a
                l_cls = l_cls + (kl(s_cls.view(n, a, nc, h, w), t_cls.view(n, a, nc, h, w))
                                 .mean(dim=2) * weight).sum() / norm
            return self._scaled(l_box, l_obj, l_cls, n)
    head = YOLOv5Head(head_module=dict(type='YOLOv5HeadModule', num_classes=80,
                                       in_channels=[256, 512, 1024], widen_factor=0.25))
    g = torch.Generator().manual_seed(0)
    sizes = [args.img // s for s in (8, 16, 32)]

    def preds(grad):
        out = tuple([torch.randn(args.batch, 3 * c, s, s, generator=g) * 3 - 4 for s in sizes]
                    for c in (80, 4, 1))
        return tuple([x.to(args.device).requires_grad_(grad) for x in part] for part in out)

    s_preds, t_preds = preds(True), preds(False)
    variants = {'YOLOv5OutputDistillLoss (this release)': YOLOv5OutputDistillLoss,
                'its previous form (autograd through the element-wise KL, mmyolo CIoU)':
                ElementwiseOutputDistillLoss,
                "the scripts' raw-MSE loss": YOLOv5MSEOutputDistillLoss}
    ours, plain = (v() for v in (YOLOv5OutputDistillLoss, ElementwiseOutputDistillLoss))
    for loss in (ours, plain):
        loss.inherit_head_weights(head)
    s64, t64 = (tuple([x.detach().double() for x in part] for part in p)
                for p in (s_preds, t_preds))
    with torch.no_grad():  # in float64: the random boxes include near-empty ones, whose
        a, b = ours(s64, t64), plain(s64, t64)  # CIoU float32 rounds differently
    for part in a:  # the baseline computes the same loss
        assert torch.allclose(a[part], b[part], rtol=1e-4), (part, a[part], b[part])
    times = {name: [] for name in variants}
    for r in range(args.rounds + 1):  # round 0: warm-up
        for name, loss_type in variants.items():
            loss = loss_type()
            loss.inherit_head_weights(head)
            start = time.perf_counter()
            for _ in range(args.iters):
                sum(loss(s_preds, t_preds).values()).backward()
            if r:
                times[name].append((time.perf_counter() - start) / args.iters)
    print(f'\nOutput-distillation losses, forward + backward: 80 classes, batch {args.batch}, '
          f'{args.img} px, {args.device}, {args.threads} threads, median of {args.rounds}\n')
    print('| loss | ms |\n|---|---|')
    for name, ts in times.items():
        print(f'| {name} | {1000 * statistics.median(ts):.1f} |')


PROFILED_STEPS = 5


def profile(args, batch) -> None:
    """The ``--profile`` table: self CPU time per operator, distilled minus alone."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    names = ('student alone (n)', 'kd-out, n <- n', 'kd-out, n <- s')
    variants = build_variants(args.device, args.classes, names)
    per_op = {name: {} for name in variants}
    for name, (model, optim) in variants.items():
        step(model, optim, batch)  # warm-up
    for _ in range(PROFILED_STEPS):  # alternating, as the timing rounds do
        for name, (model, optim) in variants.items():
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                step(model, optim, batch)
            for e in prof.key_averages():
                per_op[name][e.key] = (per_op[name].get(e.key, 0.0) +
                                       e.self_cpu_time_total / PROFILED_STEPS / 1e3)
    alone = per_op[names[0]]
    print(f'\nSelf CPU ms per step, distilled minus student alone: {args.classes or 3} '
          f'classes, batch {args.batch}, {args.img} px, {args.threads} threads, '
          f'{PROFILED_STEPS} steps profiled (the profiler adds its own overhead)\n')
    for name in names[1:]:
        diff = {k: v - alone.get(k, 0.0) for k, v in per_op[name].items()}
        print(f'{name}: {sum(per_op[name].values()) - sum(alone.values()):+.0f} ms in all\n')
        print('| operator | ms |\n|---|---|')
        for op, ms in sorted(diff.items(), key=lambda kv: -kv[1])[:12]:
            print(f'| {op} | {ms:+.1f} |')
        print()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    import mmkd_yolo  # noqa: F401
    if args.loss:
        loss_speed(args)
        return
    from mmengine.logging import MMLogger
    MMLogger.get_instance('kd_speed', log_level='WARNING')
    with tempfile.TemporaryDirectory() as tmp:
        batch = make_batch(args, osp.join(tmp, 'shapes'))
    if args.profile:
        profile(args, batch)
        return
    variants = build_variants(args.device, args.classes)
    times = {name: [] for name in variants}
    sync = torch.cuda.synchronize if args.device.startswith('cuda') else (lambda: None)
    for name, (model, optim) in variants.items():  # warm-up
        step(model, optim, batch)
    for r in range(args.rounds):
        for name, (model, optim) in variants.items():
            sync()
            start = time.perf_counter()
            for _ in range(args.iters):
                step(model, optim, batch)
            sync()
            times[name].append((time.perf_counter() - start) / args.iters)
        print(f'round {r + 1}/{args.rounds} done', file=sys.stderr, flush=True)
    base = statistics.median(times['student alone (n)'])
    dev = torch.cuda.get_device_name(0) if args.device.startswith('cuda') else \
        f'CPU, {args.threads} threads'
    print(f'\nYOLOv5 distillation speed: batch {args.batch}, {args.img} px, {dev}, '
          f'{args.rounds} rounds x {args.iters} iterations, median\n')
    print('| run | s/it | vs student alone |\n|---|---|---|')
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f'| {name} | {med:.3f} | {med / base:.2f}x |')


if __name__ == '__main__':
    main()
