"""Environment report: what a user pastes into a bug report.

Run ``python -m mmkd_yolo.apis.env``, ``python tools/misc/print_env.py`` or ``make env``.
"""
from __future__ import annotations

import platform
import sys
from collections import OrderedDict


def _version(module_name: str) -> str:
    try:
        module = __import__(module_name)
    except Exception as e:  # a broken install is what the report is for
        return f'not importable ({type(e).__name__}: {e})'
    return getattr(module, '__version__', 'unknown')


def collect_env() -> 'OrderedDict[str, str]':
    """Versions of Python, torch and the OpenMMLab stack, and the active compat measures.

    Returns:
        OrderedDict[str, str]: One entry per line of the report.
    """
    import torch

    env: 'OrderedDict[str, str]' = OrderedDict()
    env['Python'] = sys.version.replace('\n', ' ')
    env['Platform'] = platform.platform()
    env['torch'] = torch.__version__
    env['CUDA available'] = str(torch.cuda.is_available())
    env['torch CUDA'] = str(torch.version.cuda)
    if torch.cuda.is_available():
        env['GPU'] = torch.cuda.get_device_name(0)
    env['mmcv'] = _version('mmcv')
    try:
        from mmcv.ops import batched_nms  # noqa: F401
        env['mmcv ops'] = 'compiled (mmcv._ext loads)'
    except Exception as e:
        env['mmcv ops'] = f'missing ({type(e).__name__}: {e}); rerun tools/misc/install_env.sh'
    for name in ('mmengine', 'mmdet', 'mmyolo', 'onnx', 'onnxruntime'):
        env[name] = _version(name)
    try:
        import mmkd_yolo
        from mmkd_yolo import compat
        env['mmrazor'] = _version('mmrazor')
        env['mmkd_yolo'] = mmkd_yolo.__version__
        import torch

        from mmkd_yolo.models.teacher_precision import (choose_teacher_runtime,
                                                        cpu_has_native_bf16)
        env['CPU native bf16'] = str(cpu_has_native_bf16())
        runtime, why = choose_teacher_runtime('auto', torch.device('cpu'))
        env['teacher on CPU (teacher_precision=auto)'] = f'{runtime}: {why}'

        for i, measure in enumerate(compat.ACTIVE_MEASURES):
            env[f'compat measure {i + 1}'] = measure
    except Exception as e:
        env['mmkd_yolo'] = f'not importable ({type(e).__name__}: {e})'
    return env


def main() -> None:
    for key, value in collect_env().items():
        print(f'{key}: {value}')


if __name__ == '__main__':
    main()
