"""Caffe's lr policies as pure functions: values derived by hand from the formulas in Caffe's GetLearningRate,
multistep's one-step-per-call counter, and the errors Caffe's CHECKs raise."""
import math

import numpy
import pytest

from netspec import caffe_pb2
from solver import lr_policy
from solver.lr_policy import LR_POLICIES, learning_rate


def solver_param(**fields):
    stepvalue = fields.pop("stepvalue", ())
    p = caffe_pb2.SolverParameter(**fields)
    p.stepvalue.extend(stepvalue)
    return p


def rates(param, iters):
    out, step = [], 0
    for it in iters:
        rate, step = learning_rate(param, it, step)
        out.append(rate)
    return out


def test_every_caffe_policy_is_there():
    assert sorted(LR_POLICIES) == ["exp", "fixed", "inv", "multistep", "poly", "sigmoid", "step"]


def test_fixed():
    assert rates(solver_param(lr_policy="fixed", base_lr=1e-10), [0, 1, 99999]) == [numpy.float32(1e-10)] * 3


def test_step_and_its_counter():
    p = solver_param(lr_policy="step", base_lr=0.01, gamma=0.1, stepsize=3)
    assert numpy.allclose(rates(p, range(7)), [0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001], rtol=1e-6)
    assert learning_rate(p, 7, 0)[1] == 2           # current_step = iter // stepsize, saved in the .solverstate


def test_exp_inv_poly_sigmoid_formulas():
    f = lambda x: float(numpy.float32(x))      # noqa: E731  the prototxt's floats are float32, as in Caffe
    for it in (0, 1, 5, 37):
        exp = learning_rate(solver_param(lr_policy="exp", base_lr=0.5, gamma=0.9), it)[0]
        assert exp == pytest.approx(0.5 * f(0.9) ** it, rel=1e-6)
        inv = learning_rate(solver_param(lr_policy="inv", base_lr=0.5, gamma=1e-3, power=0.75), it)[0]
        assert inv == pytest.approx(0.5 * (1 + f(1e-3) * it) ** -0.75, rel=1e-6)
        poly = learning_rate(solver_param(lr_policy="poly", base_lr=0.5, power=0.9, max_iter=40), it)[0]
        assert poly == pytest.approx(0.5 * (1 - it / 40) ** f(0.9), rel=1e-6)
        sig = learning_rate(solver_param(lr_policy="sigmoid", base_lr=0.5, gamma=0.5, stepsize=3), it)[0]
        assert sig == pytest.approx(0.5 / (1 + math.exp(-0.5 * (it - 3))), rel=1e-6)


def test_poly_reaches_zero_at_max_iter():
    assert learning_rate(solver_param(lr_policy="poly", base_lr=1.0, power=2.0, max_iter=10), 10)[0] == 0


def test_multistep_steps_at_each_stepvalue():
    p = solver_param(lr_policy="multistep", base_lr=1.0, gamma=0.5, stepvalue=[2, 4])
    assert rates(p, range(6)) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_multistep_counter_moves_one_step_per_call():
    # Caffe advances current_step_ by at most one per GetLearningRate: a fresh counter at iter 10 with
    # stepvalues 2 and 4 passed gives gamma^1 on the first call and gamma^2 only on the next one
    p = solver_param(lr_policy="multistep", base_lr=1.0, gamma=0.5, stepvalue=[2, 4])
    rate, step = learning_rate(p, 10, 0)
    assert (rate, step) == (0.5, 1)
    assert learning_rate(p, 10, step) == (0.25, 2)
    assert learning_rate(p, 10, 2) == (0.25, 2)       # past the last stepvalue it stays


def test_rates_are_float32_like_caffes_dtype():
    rate, _ = learning_rate(solver_param(lr_policy="inv", base_lr=0.1, gamma=1e-4, power=0.75), 3)
    assert isinstance(rate, numpy.float32)


def test_policies_are_pure():
    p = solver_param(lr_policy="multistep", base_lr=1.0, gamma=0.5, stepvalue=[1])
    before = p.SerializeToString()
    assert learning_rate(p, 5, 0) == learning_rate(p, 5, 0)
    assert p.SerializeToString() == before


@pytest.mark.parametrize("fields, message", [
    (dict(lr_policy="step", base_lr=1, gamma=-0.1, stepsize=2), "gamma >= 0"),
    (dict(lr_policy="step", base_lr=1, gamma=0.1), "stepsize > 0"),
    (dict(lr_policy="exp", base_lr=1, gamma=-1), "gamma >= 0"),
    (dict(lr_policy="inv", base_lr=1, gamma=-1, power=1), "gamma >= 0"),
    (dict(lr_policy="sigmoid", base_lr=1, gamma=-0.5, stepsize=3), "gamma >= 0"),
    (dict(lr_policy="sigmoid", base_lr=1, gamma=0.5), "stepsize > 0"),
    (dict(lr_policy="multistep", base_lr=1, gamma=-0.5), "gamma >= 0"),
    (dict(lr_policy="poly", base_lr=1, power=1), "max_iter > 0"),
    (dict(lr_policy="cosine", base_lr=1), "unknown lr_policy 'cosine'"),
    (dict(base_lr=1), "unknown lr_policy ''"),
])
def test_bad_policies_are_refused(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        lr_policy.check(solver_param(**fields))
