"""The 16 solver trajectories real Caffe computed (caffe-golden solver_*.h5): for every solver type, lr policy,
L1/L2 decay, iter_size and clip_gradients case, each step's raw grads, loss, learning rate, gradient norm and the
params after the update must match Caffe's within the README's tolerances."""
import numpy
import pytest

from layers import backend
from solver import SOLVERS, get_solver
from tests.solver.golden_solver import CASES, SolverCase, close


def test_every_solver_type_has_a_golden_case():
    types = set()
    for name in CASES:
        case = SolverCase(name)
        types.add(next(line.split('"')[1] for line in case.solver_prototxt.splitlines() if line.startswith("type:")))
    assert types == set(SOLVERS) and len(CASES) == 16


def run_golden(case, folder, device="cpu"):
    solver = get_solver(case.write(folder), device=device)
    assert type(solver).type == solver.param.type
    assert [f"{layer.name}/{i}" for layer in solver.net.layers for i in range(len(layer.blobs))] == case.param_order
    case.set_params(solver.net)
    seen = []

    def record(s):
        seen.append(({name: [backend.to_cpu(b.diff).copy() for b in blobs] for name, blobs in s.net.params.items()},
                     s.grad_l2norm(), s.learning_rate()[0]))
    solver.add_callback(record, "gradients_ready")
    for k in range(case.num_steps):
        solver.step(1)
        grads, norm, rate = seen[k]
        what = f"{case.name} step {k + 1}"
        # grads first: when a step fails, they say whether the forward/backward or the update is off
        for layer, arrays in case.steps[k]["grads"].items():
            for i, expected in enumerate(arrays):
                assert close(grads[layer][i], expected, 1e-4, 1e-5), f"{what}: grad of {layer}/{i}"
        assert solver.smoothed_loss == pytest.approx(float(case.losses[k]), rel=1e-5), f"{what}: loss"
        assert rate == pytest.approx(float(case.learning_rates[k]), rel=1e-6), f"{what}: learning rate"
        assert norm == pytest.approx(float(case.grad_l2norms[k]), rel=1e-5), f"{what}: gradient L2 norm"
        for layer, arrays in case.steps[k]["params"].items():
            for i, expected in enumerate(arrays):
                actual = backend.to_cpu(solver.net.params[layer][i].data)
                assert close(actual, expected), (f"{what}: param {layer}/{i} off by "
                                                 f"{numpy.abs(actual - expected).max():.3g}")
    assert solver.iter == case.num_steps
    return solver


@pytest.mark.parametrize("name", CASES)
def test_trajectory_matches_caffe(name, tmp_path, device):
    case = SolverCase(name)
    solver = run_golden(case, tmp_path, device)
    # the lr_mult 0 Deconvolution never moves, and its gradient is never computed (no force_backward)
    assert numpy.array_equal(backend.to_cpu(solver.net.params["upscore"][0].data), case.params["upscore"][0])
    for step in case.steps:
        assert not step["grads"]["upscore"][0].any()
