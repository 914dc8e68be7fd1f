"""What pycaffe's C++ module `_caffe` gives besides Net and the solvers (cf. python/caffe/_caffe.cpp), in Python.

Caffe keeps a process-wide mode and device: set_mode_cpu(), set_mode_gpu() and set_device(id) decide where the
nets and solvers made afterwards run. Here that is the GPU where CuPy sees a CUDA device, and otherwise the CPU
after one message (never a crash). The engine itself has no global mode: a Net owns its device, and the pycaffe
classes (fcn_caffe.pycaffe) ask current_device() when they are built.

There is no NCCL here: has_nccl() is False and NCCL does nothing, as in a pycaffe built without NCCL.
"""
import logging
import time

from layers import backend, known_types, rng
from layers.caffe_compat import Layer  # noqa: F401 (the class Python layers subclass, as caffe.Layer)
from solver.log import get_logger

__version__ = "1.0.0"           # the Caffe release whose Python interface this reproduces

_mode = {"gpu": False, "device": 0}
_parallel = {"solver_count": 1, "solver_rank": 0, "multiprocess": False}


# ------------------------------------------------------------------ mode and device
def set_mode_cpu():
    _mode["gpu"] = False


def set_mode_gpu():
    """Nets and solvers made from now on run on the GPU set_device chose; without CUDA, on the CPU (one message)."""
    _mode["gpu"] = True
    backend.resolve_device(_mode["device"])      # says so once when there is no usable device; a bad id raises


def set_device(device_id):
    _mode["device"] = int(device_id)
    if _mode["gpu"]:
        backend.resolve_device(_mode["device"])


def current_device():
    """Where a net or solver made now runs: None for the CPU, else the GPU id."""
    if not _mode["gpu"]:
        return None
    kind, device_id = backend.resolve_device(_mode["device"])
    return device_id if kind == "gpu" else None


def set_random_seed(seed):
    """Caffe::set_random_seed: one seed for the fillers, data shuffling and dropout, on the CPU and the GPU."""
    rng.seed(seed, current_device())


def layer_type_list():
    """Every layer type a prototxt may name, sorted (Caffe's LayerRegistry::LayerTypeList)."""
    return known_types()


# ------------------------------------------------------------------ logging (glog's levels: 0 INFO .. 3 FATAL)
_GLOG_LEVELS = [logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]


def init_log(level=0, stderr=True):
    """Show log lines of glog level `level` and above on stderr. As glog without logtostderr, stderr=False
    leaves only errors there (Caffe would write the rest to log files, which this engine does not keep)."""
    threshold = _GLOG_LEVELS[min(max(int(level), 0), 3)]
    get_logger().setLevel(threshold if stderr else max(threshold, logging.ERROR))


def log(message):
    """LOG(INFO) << message, in the solver's log."""
    get_logger().info(message)


# ------------------------------------------------------------------ multi-GPU bookkeeping (no NCCL)
def has_nccl():
    return False


class NCCL:
    """pycaffe's NCCL(solver, uid) as built without NCCL: it can be made and registered, and does nothing."""

    def __init__(self, solver, uid):
        self.solver, self.uid = solver, uid


def solver_count():
    return _parallel["solver_count"]


def set_solver_count(count):
    _parallel["solver_count"] = int(count)


def solver_rank():
    return _parallel["solver_rank"]


def set_solver_rank(rank):
    _parallel["solver_rank"] = int(rank)


def set_multiprocess(multiprocess):
    _parallel["multiprocess"] = bool(multiprocess)


# ------------------------------------------------------------------ Timer
class Timer:
    """Caffe's Timer: start(), stop(), and ms, the milliseconds between them (reading ms stops a running timer)."""

    def __init__(self):
        self._started = None
        self._elapsed = 0.0
        self._has_run = False

    def start(self):
        if self._started is None:
            self._started = time.perf_counter()
            self._has_run = True

    def stop(self):
        if self._started is not None:
            self._elapsed = time.perf_counter() - self._started
            self._started = None

    @property
    def ms(self):
        if not self._has_run:
            get_logger().warning("Timer has never been run before reading time.")
            return 0.0
        self.stop()
        return self._elapsed * 1000.0
