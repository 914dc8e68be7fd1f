"""SGD's fused CPU update (solver/sgd._sgd_update_cpu: one chunked pass over data, diff and history) gives the
same bits as its twin, the unfused steps Update.regularize + SGD.compute + data -= diff."""
import numpy
import pytest

from solver import sgd
from solver.update import add_scaled

f32 = numpy.float32


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("decay", [f32(5e-4), f32(0)])
def test_fused_cpu_update_is_the_unfused_steps_bit_for_bit(dtype, decay, monkeypatch):
    monkeypatch.setattr(sgd, "_CPU_CHUNK", 1000)               # many chunks, the last one partial
    rng = numpy.random.default_rng(5)
    data, diff, history = (rng.standard_normal((37, 5, 29)).astype(dtype) for _ in range(3))
    momentum, rate = f32(0.99), f32(1e-3) * f32(2)
    want = [a.copy() for a in (data, diff, history)]
    x, d, h = want
    if decay:
        add_scaled(d, decay, x)                                  # Update.regularize
    h *= momentum                                                # SGD.compute
    d *= rate
    h += d
    d[...] = h
    x -= d                                                       # Update.apply
    sgd._sgd_update_cpu(momentum, rate, decay, data, diff, history)
    for got, expected in zip((data, diff, history), want):
        assert got.dtype == expected.dtype and (got == expected).all()
