"""Training: Caffe's solvers and their loop, snapshots and the `python -m solver` command.

    from solver import get_solver
    solver = get_solver("solver.prototxt")          # the class the prototxt's `type` names
    solver.net.copy_from("init.caffemodel")
    solver.step(4000)                                # or solver.solve(), as pycaffe
"""
from netspec import io as netio, paths
from solver.lr_policy import LR_POLICIES, learning_rate
from solver.nets import share_trained_layers
from solver.signals import SignalHandler
from solver.solver import (SOLVERS, AdaDeltaSolver, AdaGradSolver, AdamSolver, DivergedError, NesterovSolver,
                           RMSPropSolver, SGDSolver, Solver)


def get_solver(param, device=None, solvers: dict = SOLVERS) -> Solver:
    """Build the solver `param` (a solver path, prototxt text or SolverParameter) asks for by its `type`
    (or legacy `solver_type`), as pycaffe's caffe.get_solver; `solvers` maps the types to the classes."""
    source = paths.source_path(param)
    try:
        kind = netio.read_solver(param).type
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
           "share_trained_layers"]
