"""Training: Caffe's solvers and their loop, snapshots and the `python -m solver` command.

    from solver import get_solver
    solver = get_solver("solver.prototxt")          # the class the prototxt's `type` names
    solver.net.copy_from("init.caffemodel")
    solver.step(4000)                                # or solver.solve(), as pycaffe
"""
from solver.lr_policy import LR_POLICIES, learning_rate
from solver.sgd import (SOLVERS, AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver, RMSPropSolver,
                        SGDSolver)
from solver.signals import SignalHandler
from solver.solver import DivergedError, Solver, seed_random, share_trained_layers


def get_solver(param, device=None, solvers=SOLVERS):
    """Build the solver `param` (a solver path, prototxt text or SolverParameter) asks for by its `type`
    (or legacy `solver_type`), as pycaffe's caffe.get_solver; `solvers` maps the types to the classes."""
    from netspec import io as netio
    from solver.solver import _source_path
    source = _source_path(param)
    try:
        kind = netio.read_solver(source or param).type
    except FileNotFoundError:
        raise FileNotFoundError(f"solver file '{param}' not found") from None
    try:
        cls = solvers[kind]
    except KeyError:
        raise ValueError(f"{source or 'solver'}: unknown solver type \"{kind}\"; Caffe's types are "
                         f"{', '.join(solvers)}") from None
    return cls(param, device=device)


__all__ = ["AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "DivergedError", "LR_POLICIES", "NesterovSolver",
           "RMSPropSolver", "SGDSolver", "SOLVERS", "SignalHandler", "Solver", "get_solver", "learning_rate",
           "seed_random", "share_trained_layers"]
