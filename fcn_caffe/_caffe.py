"""What pycaffe's C++ module `_caffe` gives besides Net and the solvers (cf. python/caffe/_caffe.cpp), in Python.

Caffe keeps a process-wide mode and device: set_mode_cpu(), set_mode_gpu() and set_device(id) decide where the
nets and solvers made afterwards run. Here that is the GPU where CuPy sees a CUDA device, and otherwise the CPU
after one message (never a crash). The engine itself has no global mode: a Net owns its device, and the pycaffe
classes (fcn_caffe.pycaffe) ask current_device() when they are built.

Multi-GPU as pycaffe's train.py does it: set_solver_count/set_solver_rank, then NCCL(solver, uid), nccl.bcast() and
solver.add_callback(nccl) in each process (solver/parallel.py does the work). has_nccl() is True with CuPy's NCCL
and a GPU; without it, processes started by mpiexec (as many as solver_count) all-reduce through MPI, and a
solver_count of 1 needs nothing.
"""
import logging
import time

from layers import backend, known_types, rng
from solver import parallel
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


# ------------------------------------------------------------------ multi-GPU (solver/parallel.py)
def has_nccl():
    """Whether NCCL can run here: CuPy with NCCL and a CUDA device."""
    return parallel.has_nccl()


class NCCL:
    """pycaffe's NCCL(solver, uid): joins `solver` to the group of solver_count() processes (this one being
    solver_rank()): its data share, and with bcast() rank 0's weights; solver.add_callback(nccl) all-reduces the
    gradients before each update. NCCL when has_nccl(), else MPI for processes started by mpiexec."""

    def __init__(self, solver, uid):
        self.solver, self.uid = solver, uid
        count, rank = solver_count(), solver_rank()
        if count == 1:
            comm = parallel.Single()
        elif has_nccl():
            comm = parallel.NCCLCommunicator(rank, count, uid)
        elif parallel.launched_size() == count and parallel.has_mpi():
            comm = parallel.MPICommunicator()
            if comm.rank != rank:
                raise RuntimeError(f"set_solver_rank({rank}) but this is MPI rank {comm.rank} of the processes "
                                   f"mpiexec started; set the rank to MPI's")
        else:
            raise RuntimeError(f"caffe.NCCL for {count} solvers needs NCCL (CuPy with NCCL, and GPUs; has_nccl() is "
                               f"False here) or {count} processes started by mpiexec -n {count} with mpi4py "
                               f"(pip install -e \".[mpi]\"); set_solver_count(1) trains in one process")
        self.parallel = parallel.Parallel(solver, comm) if solver is not None else None

    @staticmethod
    def new_uid():
        """NCCL's unique id for a new group (made once, given to every process); empty without NCCL."""
        if not has_nccl():
            return b""
        from cupy.cuda import nccl
        return nccl.get_unique_id()

    def bcast(self):
        """Every solver takes rank 0's weights."""
        if self.parallel is not None:
            self.parallel.broadcast_weights()

    def on_start(self):
        pass

    def on_gradients_ready(self):
        if self.parallel is not None:
            self.parallel.reduce_gradients()


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
