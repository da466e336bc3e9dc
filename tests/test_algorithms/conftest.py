import pytest


@pytest.fixture(autouse=True)
def runner_device_is_the_cpu(monkeypatch):
    """These tests run the model on the CPU whatever the machine has: the build-time
    check of ``teacher_precision`` (where the Runner would put the model) is for the CPU
    too, also on a machine with CUDA (``benchmarks/gpu_check.sh`` runs them there)."""
    # imported here, not at the top: pytest loads this file in pytest-xdist's controller
    # too, which runs no test and need not import the stack (tests/conftest.py)
    from mmkd_yolo.models import teacher_runtime
    monkeypatch.setattr(teacher_runtime, 'get_device', lambda: 'cpu')
