"""Parameters, GFLOPs and CPU time of a model."""
from torch import nn

from mmkd_yolo.analysis import measure_model


class TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 16, 1, stride=2)

    def _forward(self, x):
        return self.b(self.a(x))


def test_counts_against_hand_computation():
    model = TwoConvs()
    got = measure_model(model, 32, runs=3, warmup=1)
    assert got['params'] == (3 * 8 * 9 + 8) + (8 * 16 + 16)
    # 2 x multiply-adds: 8 outputs of 3x3x3 on 32x32, then 16 outputs of 8 on 16x16
    assert abs(got['gflops'] - 2 * (8 * 32 * 32 * 27 + 16 * 16 * 16 * 8) / 1e9) < 1e-12
    assert got['ms'] > 0
