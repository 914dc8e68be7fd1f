"""The solver's GPU path against its CPU path: SGD's fused update kernel (regularize, momentum, apply in one pass)
and the other rules' array-module code, over a few iterations of the tiny problem, testing and displaying.

'sim' runs the GPU code on numpy arrays with the kernels' CUDA source compiled for the CPU (tests/cuda_sim.py);
'gpu' runs it through CuPy on a CUDA device (-m gpu)."""
import numpy
import pytest

from layers import backend
from solver import get_solver, sgd
from tests import cuda_sim
from tests.conftest import gpu
from tests.solver.tiny import make_tiny


@pytest.fixture(params=["sim", pytest.param("gpu", marks=gpu)])
def device(request):
    if request.param == "sim" and not cuda_sim.have_compiler():
        pytest.skip("needs a C++ compiler (g++) to run the kernels' source on the CPU")
    return request.param


def train(path, device, steps=6):
    solver = get_solver(path, device=None if device == "cpu" else 0)
    solver.step(steps)
    return solver, [backend.to_cpu(b.data).copy() for b in solver.net.learnable_params], solver.smoothed_loss


@pytest.mark.parametrize("solver_type, extra", [
    ("SGD", {}), ("SGD", {"regularization_type": '"L1"'}), ("SGD", {"clip_gradients": 0.5, "iter_size": 2}),
    ("Nesterov", {}), ("AdaGrad", {"momentum": 0}), ("RMSProp", {"momentum": 0}), ("AdaDelta", {"base_lr": 1}),
    ("Adam", {"momentum2": 0.999, "base_lr": 0.01}),
])
def test_the_gpu_path_trains_as_the_cpu(tmp_path, monkeypatch, device, solver_type, extra):
    path = make_tiny(tmp_path, type=f'"{solver_type}"', test_interval=3, **extra)
    _, cpu, cpu_loss = train(path, "cpu")
    fused = []
    if device == "sim":
        cuda_sim.simulate(monkeypatch)
    kernel = sgd._sgd_update
    monkeypatch.setattr(sgd, "_sgd_update", lambda *args: (fused.append(1), kernel(*args))[1])
    solver, have, loss = train(path, device)
    for got, want in zip(have, cpu):
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * numpy.abs(want).max())
    assert loss == pytest.approx(cpu_loss, rel=1e-5)
    # the fused kernel runs for SGD with L2 decay, once per param per step; every other rule runs the xp code
    uses_kernel = solver_type == "SGD" and "regularization_type" not in extra
    assert len(fused) == (6 * len(solver.net.learnable_params) if uses_kernel else 0)
