"""The teacher in bfloat16, onnxruntime and int8: accuracy against float32, forward time.

    python benchmarks/teacher_precision.py [--weights ../shared/weights/yolov5n.pt]
        [--data ../shared/data/coco128/data.yaml] [--img-size 320]
        [--precisions fp32 bf16 ort int8] [--time-only | --no-time]

Accuracy: the official YOLOv5n, prepared as ``YOLOv5Distill`` prepares a teacher
(BatchNorm folded, channels-last), evaluated by tools/test.py's protocol on coco128 with
backbone, neck and head under the autocast of ``teacher_precision`` and the outputs cast
back to float32 (as the distillation losses see them), once per precision. Time: the
teacher forward (n and s) at batch 16 and 1, median of 10, per precision, with the weights
and input held in that precision as ``YOLOv5Distill`` holds them; ``ort``: the teacher
exported and run by onnxruntime as ``teacher_precision='ort'`` runs it (float32: its
records equal PyTorch's to 1e-4 relative, tests/test_algorithms/test_yolov5_distill.py,
so its accuracy is float32's, as the table shows); ``int8``: a study, not a product path,
that graph quantized statically by onnxruntime (:func:`int8_session`), its ranges
calibrated by MinMax; ``int8-entropy``, ``int8-p99.99``, ``int8-p99.999``: calibrated by
onnxruntime's Entropy and Percentile (99.99 / 99.999) methods instead.
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
SHARED = osp.join(osp.dirname(REPO), 'shared')
CONFIG = 'mmyolo::yolov5/yolov5_{}-v61_syncbn_fast_8xb16-300e_coco.py'


def under_autocast(fn, runtime):
    from mmkd_yolo.models.teacher_precision import teacher_autocast, to_float32

    def wrapped(x, *args, **kwargs):
        with teacher_autocast(runtime, x.device if torch.is_tensor(x) else x[0].device):
            return to_float32(fn(x, *args, **kwargs))
    return wrapped


#: int8 variants: onnxruntime's calibration method and its options (Percentile: of |x|,
#: onnxruntime's default ``symmetric=True``, the lower end then clipped to the minimum)
INT8_CALIBRATION = {
    'int8': ('MinMax', {}),
    'int8-entropy': ('Entropy', {}),
    'int8-p99.99': ('Percentile', {'CalibPercentile': 99.99}),
    'int8-p99.999': ('Percentile', {'CalibPercentile': 99.999}),
}
#: Entropy's histogram: quantize_static cannot set it, and its default (128 bins for 128
#: quantized bins) leaves one candidate range, the whole histogram, i.e. MinMax's;
#: TensorRT's entropy calibration uses 2048 bins
ENTROPY_BINS = dict(num_bins=2048, num_quantized_bins=128)


def int8_session(model, source, calib, num_threads, precision='int8'):
    """A study, not a product path: the teacher graph ``teacher_precision='ort'`` exports,
    statically quantized to int8 by onnxruntime (QDQ, per-channel int8 weights, uint8
    activations, ranges calibrated on the ``calib`` batches by the method of
    ``INT8_CALIBRATION[precision]``; each batch padded to a square of its longer side with
    YOLOv5's grey, as training batches are squares: the histogram methods need batches
    of one shape).

    Returns:
        onnxruntime.InferenceSession: outputs as OnnxTeacher's graph has them.
    """
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mmkd_yolo.models.onnx_teacher import export_recorded_graph, session_options

    side = max(max(b.shape[-2:]) for b in calib)
    calib = [torch.nn.functional.pad(b.float(), (0, side - b.shape[-1], 0, side - b.shape[-2]),
                                     value=114 / 255) for b in calib]
    method, options = INT8_CALIBRATION[precision]

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{'images': b.contiguous().numpy()} for b in calib])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # onnxruntime's quantization tools write temporary files to the cwd
        try:
            with open('f.onnx', 'wb') as f:
                f.write(export_recorded_graph(model, [source], calib[0][:1])[0])
            quant_pre_process('f.onnx', 'pre.onnx', skip_symbolic_shape=True)
            import onnx
            graph = onnx.load('pre.onnx').graph
            # the head's output convolutions stay float32: their outputs are the records
            keep = [n.name for n in graph.node if 'convs_pred' in n.name]
            assert len(keep) == 3, keep
            cache = None
            if method == 'Entropy':  # ranges computed here, with ENTROPY_BINS, then cached
                calibrator = create_calibrator(
                    'pre.onnx', list(set(QLinearOpsRegistry) | set(QDQRegistry)),
                    augmented_model_path='augmented.onnx',
                    calibrate_method=CalibrationMethod.Entropy, extra_options=ENTROPY_BINS)
                calibrator.collect_data(Batches())
                cache = 'ranges.json'
                save_tensors_data(calibrator.compute_data(), cache)
            quantize_static('pre.onnx', 'q.onnx', Batches(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=keep,
                            calibrate_method=getattr(CalibrationMethod, method),
                            extra_options=options, calibration_cache_path=cache)
            return ort.InferenceSession('q.onnx', session_options(num_threads),
                                        providers=['CPUExecutionProvider'])
        finally:
            os.chdir(cwd)


def onnx_head(model, precision, calib):
    """The detector's head outputs from onnxruntime (float32 or int8), as a replacement of
    ``head_module.forward`` taking the preprocessed images."""
    from mmrazor.models.task_modules.recorder import ModuleOutputsRecorder

    from mmkd_yolo.models.onnx_teacher import OnnxTeacher
    source = 'bbox_head.head_module'
    teacher = OnnxTeacher(model, {'preds': ModuleOutputsRecorder(source)},
                          calib[0][:1], torch.get_num_threads())
    if precision in INT8_CALIBRATION:
        teacher.session = int8_session(model, source, calib, torch.get_num_threads(),
                                       precision)
    return lambda images: teacher(images)['preds'][0]


def evaluate(args, precision, work_dir):
    import io
    from contextlib import redirect_stdout

    from mmcv.cnn import fuse_conv_bn

    from mmkd_yolo.apis import build_runner, prepare_test_cfg
    from mmkd_yolo.converters import load_or_convert
    from mmkd_yolo.models.teacher_precision import choose_teacher_runtime
    _, ckpt = load_or_convert(args.weights)
    cfg = prepare_test_cfg(CONFIG.format('n'), ckpt, work_dir=work_dir, data=args.data,
                           img_size=args.img_size,
                           # no EMAHook: the checkpoint holds the averaged weights already,
                           # and its swap would not fit the folded model
                           cfg_options={'custom_hooks': [],
                                        'test_dataloader.num_workers': 0,
                                        'test_dataloader.persistent_workers': False})
    runner = build_runner(cfg)
    runner.call_hook('before_run')  # as Runner.test() does (EMAHook builds its copy)
    runner.load_or_resume()
    model = runner.model
    fuse_conv_bn(model)
    model.to(memory_format=torch.channels_last)
    head = model.bbox_head.head_module
    runner._test_loop = runner.build_test_loop(runner._test_loop)
    if precision == 'ort' or precision in INT8_CALIBRATION:
        # int8 ranges calibrated on the first 32 images (those are evaluated too: a
        # flattering setting for int8)
        calib = []
        for data in runner.test_dataloader:
            if sum(len(images) for images in calib) >= 32:
                break
            calib.append(model.data_preprocessor(data, False)['inputs'])
        head.forward = onnx_head(model, precision, calib)
        model.extract_feat = lambda images: images  # the graph runs backbone and neck
    else:
        runtime, _ = choose_teacher_runtime(precision, torch.device('cpu'))
        model.extract_feat = under_autocast(model.extract_feat, runtime)
        head.forward = under_autocast(head.forward, runtime)
    buf = io.StringIO()
    with redirect_stdout(buf):
        metrics = runner.test_loop.run()
    return metrics['coco/bbox_mAP'], metrics['coco/bbox_mAP_50']


def forward_ms(size, batch, img):
    from mmcv.cnn import fuse_conv_bn
    from mmengine.registry import init_default_scope

    from mmkd_yolo.models.detector_cfg import load_detector_cfg
    from mmkd_yolo.models.teacher_precision import AUTOCAST_DTYPES, teacher_autocast
    from mmkd_yolo.registry import MODELS
    init_default_scope('mmyolo')
    model = MODELS.build(load_detector_cfg(CONFIG.format(size))).eval()
    fuse_conv_bn(model)
    model.to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, img, img).contiguous(memory_format=torch.channels_last)
    # first, while the model is float32; int8 ranges from random images (speed only)
    out = {'ort': _ort_forward_ms(model, x, None),
           'int8': _ort_forward_ms(model, x, [torch.rand(2, 3, img, img)])}
    for name in ('fp32', 'bf16'):
        if name in AUTOCAST_DTYPES:  # as TeacherRuntime does: cast once, not per call
            model.to(AUTOCAST_DTYPES[name])
            x = x.to(AUTOCAST_DTYPES[name])
        with torch.no_grad(), teacher_autocast(name, x.device):
            for _ in range(3):
                model._forward(x)
            times = []
            for _ in range(10):
                start = time.perf_counter()
                model._forward(x)
                times.append(time.perf_counter() - start)
        out[name] = statistics.median(times) * 1000
    return out


def _ort_forward_ms(model, x, int8_calib):
    """The teacher as ``teacher_precision='ort'`` runs it (recording the head outputs),
    median ms of 10 after 3 warm-up runs; the records converted to tensors included. With
    ``int8_calib``, its graph quantized (:func:`int8_session`)."""
    from mmrazor.models.task_modules.recorder import ModuleOutputsRecorder

    from mmkd_yolo.models.onnx_teacher import OnnxTeacher
    source = 'bbox_head.head_module'
    teacher = OnnxTeacher(model, {'preds': ModuleOutputsRecorder(source)}, x[:1],
                          torch.get_num_threads())
    if int8_calib is not None:
        teacher.session = int8_session(model, source, int8_calib, torch.get_num_threads())
    for _ in range(3):
        teacher(x)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        teacher(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--weights', default=osp.join(SHARED, 'weights', 'yolov5n.pt'))
    parser.add_argument('--data', default=osp.join(SHARED, 'data', 'coco128', 'data.yaml'))
    parser.add_argument('--img-size', type=int, default=320)
    parser.add_argument('--time-only', action='store_true',
                        help='the forward times alone (no coco128 evaluation)')
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16', 'ort', 'int8'],
                        choices=['fp32', 'bf16', 'ort', *INT8_CALIBRATION],
                        help='those evaluated')
    parser.add_argument('--no-time', action='store_true', help='the evaluation alone')
    args = parser.parse_args()
    import mmkd_yolo  # noqa: F401
    from mmkd_yolo.models.teacher_precision import cpu_has_native_bf16
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    acc = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in () if args.time_only else args.precisions:
            acc[precision] = evaluate(args, precision, osp.join(tmp, precision))
            print(f'[teacher_precision] {precision}: mAP {acc[precision][0]:.4f}', flush=True)
    times = {} if args.no_time else {(size, batch): forward_ms(size, batch, args.img_size)
                                     for size in ('n', 's') for batch in (16, 1)}
    print(f'\nTeacher precision, CPU native bf16: {cpu_has_native_bf16()}, '
          f'{torch.get_num_threads()} threads\n')
    if acc:
        print(f'Official YOLOv5n on {args.data}, {args.img_size} px (teacher as distillation '
              'runs it):\n')
        print('| precision | mAP@.5:.95 | mAP@.5 | diff vs fp32 (points) |\n|---|---|---|---|')
        for p, (m, m50) in acc.items():
            diff = (f'{100 * (m - acc["fp32"][0]):+.2f}' if 'fp32' in acc else '-')
            print(f'| {p} | {m:.4f} | {m50:.4f} | {diff} |')
    if not times:
        return
    print(f'\nTeacher forward, {args.img_size} px, median ms:\n')
    print('| teacher | batch | fp32 ms | bf16 ms | ort ms | int8 ms | fp32 / bf16 | '
          'fp32 / ort | fp32 / int8 |\n|---|---|---|---|---|---|---|---|---|')
    for (size, batch), t in times.items():
        print(f'| {size} | {batch} | {t["fp32"]:.0f} | {t["bf16"]:.0f} | {t["ort"]:.0f} | '
              f'{t["int8"]:.0f} | {t["fp32"] / t["bf16"]:.2f}x | {t["fp32"] / t["ort"]:.2f}x | '
              f'{t["fp32"] / t["int8"]:.2f}x |')


if __name__ == '__main__':
    main()
