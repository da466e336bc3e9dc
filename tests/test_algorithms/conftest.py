import pytest

from mmkd_yolo.models import teacher_runtime


@pytest.fixture(autouse=True)
def runner_device_is_the_cpu(monkeypatch):
    """These tests run the model on the CPU whatever the machine has: the build-time
    check of ``teacher_precision`` (where the Runner would put the model) is for the CPU
    too, also on a machine with CUDA (``benchmarks/gpu_check.sh`` runs them there)."""
    monkeypatch.setattr(teacher_runtime, 'get_device', lambda: 'cpu')
