"""The kernel runner the GPU kernel tests share: a kernel function called as it is on numpy arrays ('sim': the
kernels' CUDA source compiled for the CPU by tests/cuda_sim.py) or moved to the GPU and back ('gpu', -m gpu)."""
import numpy
import pytest

from layers import backend
from tests import cuda_sim
from tests.conftest import gpu


class Runner:
    """Calls a kernel function on numpy arguments: as they are ('sim') or moved to the GPU and back ('gpu')."""

    def __init__(self, kind):
        self.kind = kind

    def put(self, a):
        return backend.to_gpu(a) if self.kind == "gpu" and isinstance(a, numpy.ndarray) else a

    def get(self, a):
        if isinstance(a, tuple):
            return tuple(self.get(x) for x in a)
        return backend.to_cpu(a) if backend.is_gpu(a) else a

    def __call__(self, fn, *args):
        moved = [self.put(a) for a in args]
        result = fn(*moved)
        return [self.get(a) for a in moved], self.get(result)


@pytest.fixture(params=["sim", pytest.param("gpu", marks=gpu)])
def run(request, monkeypatch):
    if request.param == "sim":
        if not cuda_sim.have_compiler():
            pytest.skip("needs a C++ compiler (g++) to run the kernels' source on the CPU")
        monkeypatch.setattr(backend, "elementwise", cuda_sim.SimKernel)
    return Runner(request.param)


