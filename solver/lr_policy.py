"""Caffe's learning-rate policies (cf. Solver::GetLearningRate in caffe/solvers/sgd_solver.cpp), as pure functions.

Each policy is f(solver_param, it, current_step) -> (rate, current_step), `it` being the number of updates done so far
(Caffe's iter_). `current_step` is the counter Caffe keeps in the solver and saves in the .solverstate: "step" sets it
to it // stepsize, "multistep" advances it by at most one per call (so a restored counter matters), the others leave
it alone. Rates are float32, as Caffe's Dtype rate is.
"""
import math

import numpy


def _check_gamma(param, policy):
    if param.gamma < 0:
        raise ValueError(f"lr_policy \"{policy}\" needs gamma >= 0, got {param.gamma:g}")


def _check_stepsize(param, policy):
    if param.stepsize <= 0:
        raise ValueError(f"lr_policy \"{policy}\" needs stepsize > 0, got {param.stepsize}")


def fixed(param, it, current_step=0):
    return param.base_lr, current_step


def step(param, it, current_step=0):
    """base_lr * gamma ^ floor(it / stepsize)"""
    _check_stepsize(param, "step")
    _check_gamma(param, "step")
    current_step = it // param.stepsize
    return param.base_lr * math.pow(param.gamma, current_step), current_step


def exp(param, it, current_step=0):
    """base_lr * gamma ^ it"""
    _check_gamma(param, "exp")
    return param.base_lr * math.pow(param.gamma, it), current_step


def inv(param, it, current_step=0):
    """base_lr * (1 + gamma * it) ^ -power"""
    _check_gamma(param, "inv")
    return param.base_lr * math.pow(1.0 + param.gamma * it, -param.power), current_step


def multistep(param, it, current_step=0):
    """base_lr * gamma ^ (number of stepvalues passed); the counter moves at most one step per call, as Caffe's."""
    _check_gamma(param, "multistep")
    if current_step < len(param.stepvalue) and it >= param.stepvalue[current_step]:
        current_step += 1
    return param.base_lr * math.pow(param.gamma, current_step), current_step


def poly(param, it, current_step=0):
    """base_lr * (1 - it / max_iter) ^ power"""
    if param.max_iter <= 0:
        raise ValueError(f"lr_policy \"poly\" needs max_iter > 0, got {param.max_iter}")
    # Caffe computes the base in float: Dtype(1) - Dtype(iter) / Dtype(max_iter)
    base = numpy.float32(1) - numpy.float32(it) / numpy.float32(param.max_iter)
    return param.base_lr * math.pow(float(base), param.power), current_step


def sigmoid(param, it, current_step=0):
    """base_lr / (1 + exp(-gamma * (it - stepsize)))"""
    _check_gamma(param, "sigmoid")
    _check_stepsize(param, "sigmoid")
    return param.base_lr / (1.0 + math.exp(-param.gamma * (it - param.stepsize))), current_step


LR_POLICIES = {"fixed": fixed, "step": step, "exp": exp, "inv": inv, "multistep": multistep, "poly": poly,
               "sigmoid": sigmoid}


def policy(param):
    """The policy function `param.lr_policy` names (an unknown or missing name is an error, as in Caffe)."""
    try:
        return LR_POLICIES[param.lr_policy]
    except KeyError:
        raise ValueError(f"unknown lr_policy {param.lr_policy!r}; Caffe's policies are "
                         f"{', '.join(sorted(LR_POLICIES))}") from None


def learning_rate(param, it, current_step=0):
    """(rate as float32, new current_step) for iteration `it` under param.lr_policy."""
    rate, current_step = policy(param)(param, it, current_step)
    return numpy.float32(rate), current_step


def check(param):
    """Raise now, not at the first update, for a policy that Caffe would reject when computing the rate."""
    learning_rate(param, 0, 0)
