"""Data-parallel training with Caffe's multi-GPU semantics (cf. caffe/parallel.cpp's NCCL class and tools/caffe.cpp),
on existing engines: MPI through mpi4py across processes and machines, NCCL through cupy.cuda.nccl across GPUs.

Every rank runs the same net on its own batches (layers/sharding.py: rank r of N reads the batches a single process
would read at positions r, r+N, ...). Before each update the gradients are scaled by 1/N and summed over the ranks
(Caffe's on_gradients_ready), so N ranks at batch B take the steps of one process at iter_size N. Every rank starts
from rank 0's weights (broadcast after init, --weights or restore); rank 0 alone logs, tests and snapshots.

Once per iteration the ranks agree (the control step): each sends rank 0 its loss and its requests (SIGINT, SIGHUP),
rank 0 answers all of them with everyone's, so every rank stops or snapshots at the same iteration, a diverged loss
on one rank stops all of them, and rank 0 logs the mean loss over the ranks (the loss of the single process at
iter_size N). Rank 0 waits at most `timeout` seconds for each rank and names those that did not come (died or hung);
the others wait as long for rank 0's answer (rank 0 keeps them waiting while it tests or snapshots, so it tells
them it is alive meanwhile). A rank that dies makes MPICH's mpiexec end every rank at once: each rank's sentinel,
a process outside MPI, names its rank if it ended first (_SENTINEL).

Communicators (one interface: rank, size, allreduce, bcast, gather_all, keepalive, abort):
  Single       one rank, nothing to exchange (a run of one process, or a one-GPU NCCL group without NCCL)
  MPI          mpi4py; arrays on a GPU are staged through host memory
  NCCL         cupy.cuda.nccl for the gradients and weights (on the GPU); control through MPI when there is one,
               else through NCCL itself (no per-rank names on a hang then)
"""
import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Optional

import numpy

from layers import backend, rng
from layers.sharding import Shard
from solver.log import g, get_logger

log = get_logger()

DEFAULT_TIMEOUT = 300.0          # seconds a rank waits for the others at one step before it gives up on them
SNAPSHOT_BIT, STOP_BIT = 1, 2
CONTROL, ANSWER, KEEPALIVE = 11, 12, 13     # MPI tags

NO_MPI = ("mpi4py is not installed, so this process cannot join the others mpiexec started (each would train "
          "alone); install the MPI extra: pip install -e \".[mpi]\" (mpi4py and the mpich wheel, which brings "
          "mpiexec)")

_ENV_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
_ENV_RANK = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


class RankError(RuntimeError):
    """A rank died, hung or failed; the message names it where that is known."""


def launched_size() -> int:
    """How many processes mpiexec (MPICH's hydra, Open MPI, MVAPICH) started this one among; 1 without mpiexec."""
    for name in _ENV_SIZE:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def launched_rank() -> int:
    for name in _ENV_RANK:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def mpi():
    """mpi4py's MPI module; RuntimeError(NO_MPI) without mpi4py."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise RuntimeError(NO_MPI) from None
    return MPI


def has_mpi() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def has_nccl() -> bool:
    """CuPy with NCCL and a CUDA device."""
    if not backend.cuda_available():
        return False
    try:
        from cupy.cuda import nccl
        if not getattr(nccl, "available", True):
            return False
        nccl.get_version()                   # the library loads
    except Exception:                        # ImportError, or no libnccl behind CuPy's module
        return False
    return True


def uid_to_text(uid) -> str:
    """NCCL's unique id (bytes in CuPy 13 and later, a tuple of ints before) as text for an environment variable."""
    return "b" + bytes(uid).hex() if isinstance(uid, bytes) else "t" + ",".join(str(int(v)) for v in uid)


def uid_from_text(text):
    return bytes.fromhex(text[1:]) if text[0] == "b" else tuple(int(v) for v in text[1:].split(","))


def _flat_dtype(blobs):
    dtypes = {b.dtype for b in blobs}
    if len(dtypes) > 1:
        raise TypeError(f"the learnable params mix dtypes {sorted(map(str, dtypes))}; data-parallel training "
                        f"packs them into one buffer of one dtype")
    return dtypes.pop() if dtypes else numpy.dtype(numpy.float32)


def _running(pid):
    """Whether process `pid` (on this machine) runs: exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True


# The sentinel of a rank: a small process outside MPI that waits on a pipe from the rank. A rank that finishes or
# stops the job itself writes to it ("x": done, "a": this rank ended the job, having said why); a rank that dies
# (killed, crashed) closes it unwritten. MPICH's mpiexec then kills every other rank at once, so the sentinels of
# one machine compare when their ranks ended, and the first one's names its rank. mpiexec forwards what it writes.
_SENTINEL = """
import os, sys, time
fd, rank, who, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
said = os.read(fd, 1)
if said == b"x":
    sys.exit(0)
mine = os.path.join(folder, rank)
os.makedirs(folder, exist_ok=True)
with open(mine + ".tmp", "w") as f:
    f.write("aborted" if said == b"a" else repr(time.time()))
os.replace(mine + ".tmp", mine)
time.sleep(0.3)
if said != b"a":
    ended = {}
    for name in os.listdir(folder):
        try:
            with open(os.path.join(folder, name)) as f:
                ended[name] = f.read()
        except OSError:
            pass
    times = {name: float(t) for name, t in ended.items() if not name.endswith(".tmp") and t != "aborted"}
    if "aborted" not in ended.values() and min(times, key=times.get) == rank:
        sys.stderr.write(f"rank {rank} ({who}) ended without finishing (killed, or crashed without a Python error), "
                         f"the first rank of its machine to end; mpiexec then ended every rank\\n")
        sys.stderr.flush()
time.sleep(1.0)
os.remove(mine)
try:
    os.rmdir(folder)
except OSError:
    pass
"""


class Communicator:
    """A group of `size` ranks. Arrays are 1-D, contiguous, on the host (numpy) or the device (CuPy)."""
    name = "single process"
    rank, size = 0, 1
    timeout = DEFAULT_TIMEOUT

    def allreduce(self, buffer):
        """Sum `buffer` over the ranks, in place."""

    def bcast(self, buffer, root=0):
        """Overwrite `buffer` with root's, in place."""

    def gather_all(self, vector, iteration):
        """Every rank's float64 `vector` as rows of a (size, len) array on every rank (the control step)."""
        return numpy.asarray(vector, dtype=numpy.float64)[None]

    def keepalive(self):
        """Tell ranks waiting for rank 0 that it is busy, not hung (rank 0 calls it while testing, snapshotting)."""

    def describe(self, rank):
        return f"rank {rank}"

    def abort(self, code=1):
        """End every rank now (after a RankError was logged)."""
        raise SystemExit(code)


class Single(Communicator):
    """One process alone: nothing to exchange."""


class MPICommunicator(Communicator):
    """MPI through mpi4py. Collectives are non-blocking and polled against `timeout`; control messages are
    point-to-point so that rank 0 knows which ranks did not come."""
    name = "MPI"

    def __init__(self, comm=None, timeout=DEFAULT_TIMEOUT):
        self.MPI = mpi()
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = float(timeout)
        self.failure_reported = False   # MPICH's mpiexec -disable-auto-cleanup signals SIGUSR1 when a rank ended
        self._last_keepalive = 0.0
        self._sends, self._keepalives = [], []
        info = f"{socket.gethostname()} {os.getpid()}"
        self.where = self.comm.allgather(info)
        self._sentinel = None
        if self.size > 1:
            self._start_sentinel(self.comm.bcast(uuid.uuid4().hex if self.rank == 0 else None, root=0))
        self._previous_usr1 = None
        if hasattr(signal, "SIGUSR1"):
            try:
                self._previous_usr1 = signal.signal(signal.SIGUSR1, self._on_failure_notice)
            except ValueError:           # not the main thread
                pass

    def _start_sentinel(self, job):
        read, write = os.pipe()
        folder = os.path.join(tempfile.gettempdir(), f"fcn-solver-{job}")
        subprocess.Popen([sys.executable, "-c", _SENTINEL, str(read), str(self.rank),
                          self.describe(self.rank).split("(", 1)[1].rstrip(")"), folder],
                         pass_fds=(read,), start_new_session=True, stdin=subprocess.DEVNULL)
        os.close(read)
        self._sentinel = write
        atexit.register(self._tell_sentinel, b"x")

    def _tell_sentinel(self, what):
        if self._sentinel is not None:
            try:
                os.write(self._sentinel, what)
                os.close(self._sentinel)
            except OSError:
                pass
            self._sentinel = None

    def _on_failure_notice(self, signum, frame):
        """SIGUSR1 from MPICH's mpiexec -disable-auto-cleanup: a process of the job ended. Name the ranks of this
        machine that are gone and end the job now (MPICH without fault tolerance may end this process too, at
        random, the next time it talks to the dead one: so with plain mpiexec, which ends every rank at once,
        the sentinels name the rank). Ranks on other machines are left to the watchdog."""
        self.failure_reported = True
        host = socket.gethostname()
        gone = [r for r in range(self.size) if r != self.rank and self.where[r].split()[0] == host
                and not _running(int(self.where[r].split()[1]))]
        if gone:
            log.error(f"{', '.join(self.describe(r) for r in gone)} ended (mpiexec reported that a process ended); "
                      f"stopping every rank")
            self.abort(1)

    def describe(self, rank):
        host, pid = self.where[rank].split()
        return f"rank {rank} (pid {pid} on {host})"

    def _expired(self, started):
        # after mpiexec reported that a process ended, the living get a few seconds, not the whole timeout
        limit = min(self.timeout, 3.0) if self.failure_reported else self.timeout
        return time.monotonic() - started > limit

    def _cause(self):
        return ("mpiexec reported that a process ended" if self.failure_reported else
                f"waited {g(self.timeout)} s, the --timeout")

    def _wait(self, request, what, spin=False):
        """Poll `request` until done; RankError after the timeout. spin: no sleeping (bulk transfers progress
        only inside MPI calls)."""
        started, pause = time.monotonic(), 1e-5
        while True:
            try:
                if request.Test():
                    return
            except self.MPI.Exception as e:
                raise RankError(f"{what} failed: {e}") from None
            if self._expired(started):
                raise RankError(f"{what} did not complete: a rank died or hung ({self._cause()})")
            if not spin:
                time.sleep(pause)
                pause = min(pause * 2, 1e-3)

    def allreduce(self, buffer):
        host = backend.to_cpu(buffer) if backend.is_gpu(buffer) else buffer      # host staging for device arrays
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM), "the gradient all-reduce",
                   spin=True)
        if host is not buffer:
            buffer.set(host)

    def bcast(self, buffer, root=0):
        host = backend.to_cpu(buffer) if backend.is_gpu(buffer) else buffer
        # wait for everyone without spinning (a rank may still be building its nets), then move the bytes
        self._wait(self.comm.Ibarrier(), "waiting for every rank before the weight broadcast")
        self._wait(self.comm.Ibcast(host, root=root), "the weight broadcast", spin=True)
        if host is not buffer:
            buffer.set(host)

    def gather_all(self, vector, iteration):
        vector = numpy.ascontiguousarray(vector, dtype=numpy.float64)
        rows = numpy.zeros((self.size, vector.size))
        rows[self.rank] = vector
        if self.rank == 0:
            requests = {r: self.comm.Irecv(rows[r], source=r, tag=CONTROL) for r in range(1, self.size)}
            started, pause = time.monotonic(), 1e-5
            while requests:
                for r in [r for r, q in requests.items() if q.Test()]:
                    del requests[r]
                if requests and self._expired(started):
                    for q in requests.values():
                        q.Cancel()
                    names = ", ".join(self.describe(r) for r in sorted(requests))
                    raise RankError(f"{names} did not finish iteration {iteration}: died or hung "
                                    f"({self._cause()}); stopping every rank")
                time.sleep(pause)
                pause = min(pause * 2, 1e-3)
            self._drain_sends()
            self._sends = [self.comm.Isend(rows, dest=r, tag=ANSWER) for r in range(1, self.size)]
            return rows
        self._drain_sends()
        self._sends = [self.comm.Isend(vector, dest=0, tag=CONTROL)]
        answer = self.comm.Irecv(rows, source=0, tag=ANSWER)
        started, pause = time.monotonic(), 1e-5
        while not answer.Test():
            while self.comm.Iprobe(source=0, tag=KEEPALIVE):        # rank 0 is busy testing or snapshotting
                self.comm.recv(source=0, tag=KEEPALIVE)
                started = time.monotonic()
            if self._expired(started):
                answer.Cancel()
                raise RankError(f"{self.describe(0)} did not answer at the end of iteration {iteration}: died or "
                                f"hung ({self._cause()}); {self.describe(self.rank)} stops")
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)
        return rows

    def _drain_sends(self):
        for q in self._sends:
            self._wait(q, "a control message")
        self._sends = []

    def keepalive(self):
        if self.rank != 0 or time.monotonic() - self._last_keepalive < self.timeout / 8:
            return
        self._last_keepalive = time.monotonic()
        self._keepalives = [q for q in self._keepalives if not q.Test()]
        self._keepalives += [self.comm.isend(None, dest=r, tag=KEEPALIVE) for r in range(1, self.size)]

    def abort(self, code=1):
        self._tell_sentinel(b"a")        # this rank ends the job, and has said why
        time.sleep(0.5)                  # mpiexec forwards what was logged before it ends every process
        self.comm.Abort(code)


class NCCLCommunicator(Communicator):
    """NCCL through cupy.cuda.nccl on the current GPU: gradients and weights all-reduced and broadcast on the
    device. `uid` is NCCL's unique id (get_unique_id(), made once and given to every rank); with an MPI
    communicator `control`, the control step and its per-rank watchdog go through MPI."""
    name = "NCCL"

    def __init__(self, rank, size, uid=None, control: Optional[Communicator] = None, timeout=DEFAULT_TIMEOUT):
        import cupy
        from cupy.cuda import nccl
        self.cupy, self.nccl = cupy, nccl
        self.rank, self.size, self.timeout = int(rank), int(size), float(timeout)
        self.control = control
        if uid is None:
            if control is None or control.size != size:
                raise ValueError("an NCCL group of more than one process needs the uid of NCCL.new_uid() or MPI "
                                 "to share one")
            uid = nccl.get_unique_id() if control.rank == 0 else None
            uid = control.comm.bcast(uid, root=0)
        self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def _nccl_type(self, array):
        return {numpy.dtype(numpy.float32): self.nccl.NCCL_FLOAT32, numpy.dtype(numpy.float64):
                self.nccl.NCCL_FLOAT64}[numpy.dtype(array.dtype)]

    def _device(self, buffer):
        return buffer if backend.is_gpu(buffer) else self.cupy.asarray(buffer)

    def _sync(self, what):
        """Wait for the stream, polling against the timeout (an NCCL call blocks the stream, not the host)."""
        event = self.stream.record()
        deadline = time.monotonic() + self.timeout
        while not event.done:
            if time.monotonic() > deadline:
                raise RankError(f"{what} did not complete within {g(self.timeout)} s: a rank died or hung")
            time.sleep(1e-4)

    def allreduce(self, buffer):
        self.cupy.cuda.get_current_stream().synchronize()          # the gradients are written
        device = self._device(buffer)
        self.comm.allReduce(device.data.ptr, device.data.ptr, device.size, self._nccl_type(device),
                            self.nccl.NCCL_SUM, self.stream.ptr)
        self._sync("the NCCL gradient all-reduce")
        if device is not buffer:
            buffer[...] = self.cupy.asnumpy(device)

    def bcast(self, buffer, root=0):
        self.cupy.cuda.get_current_stream().synchronize()
        device = self._device(buffer)
        self.comm.bcast(device.data.ptr, device.size, self._nccl_type(device), root, self.stream.ptr)
        self._sync("the NCCL weight broadcast")
        if device is not buffer:
            buffer[...] = self.cupy.asnumpy(device)

    def gather_all(self, vector, iteration):
        if self.control is not None:
            return self.control.gather_all(vector, iteration)
        rows = numpy.zeros((self.size, len(vector)))
        rows[self.rank] = vector
        device = self.cupy.asarray(rows)
        self.allreduce(device)                      # rows of zeros but one's own: the sum is every row
        return self.cupy.asnumpy(device)

    def keepalive(self):
        if self.control is not None:
            self.control.keepalive()

    def describe(self, rank):
        return self.control.describe(rank) if self.control is not None else f"rank {rank}"

    def abort(self, code=1):
        try:
            self.comm.abort()
        finally:
            if self.control is not None:
                self.control.abort(code)
            raise SystemExit(code)


def world(timeout=DEFAULT_TIMEOUT) -> Communicator:
    """The communicator of the processes mpiexec started (MPI), or Single for a process started alone. A process
    that mpiexec started with others but that has no mpi4py gets RuntimeError(NO_MPI)."""
    if launched_size() > 1 and not has_mpi():
        raise RuntimeError(NO_MPI)
    if launched_size() > 1:
        comm = MPICommunicator(timeout=timeout)
        if comm.size == 1:
            return Single()
        return comm
    return Single()


_SHARED_SOURCES = ("Input", "Parameter", "DummyData", "MemoryData")    # the same on every rank by design


class Parallel:
    """One solver's part in a data-parallel group (`comm`): its data share, the weight broadcast, the gradient
    all-reduce and the control step. Made for a built solver; broadcast_weights() before training."""

    def __init__(self, solver, comm: Communicator):
        self.solver, self.comm = solver, comm
        self.rank, self.size = comm.rank, comm.size
        self.is_root = self.rank == 0
        self.shard = Shard(solver.net, self.rank, self.size, position=solver.batches_read[0])
        solver.parallel = self
        solver.solver_count = self.size
        if not self.is_root:
            solver.test_nets = []            # Caffe: only the root solver tests
        if solver.param.random_seed >= 0 and self.rank:
            # Caffe seeds rank r with random_seed + r (dropout differs across ranks); the data order was drawn
            # at build time with the shared seed, so the shares stay disjoint
            rng.seed(solver.param.random_seed + self.rank, None if solver.device == "cpu" else
                     int(solver.device.split(":")[1]))
        same = [layer.name for layer, bottoms in zip(solver.net.layers, solver.net.bottom_names)
                if not bottoms and layer.type not in _SHARED_SOURCES and layer not in self.shard.layers.values()]
        if same and self.is_root and self.size > 1:
            log.warning(f"layer(s) {', '.join(same)} cannot skip batches (no fast_forward), so every rank reads "
                        f"the same data from them; a Python data layer takes part by defining fast_forward(batches)")
        self.params = solver.net.learnable_params
        self.dtype = _flat_dtype(self.params)
        self.sizes = [b.count for b in self.params]
        self._buffer = None
        self.reduce_seconds = 0.0

    def _flat(self):
        xp = self.params[0].xp if self.params else numpy
        if self._buffer is None or backend.get_array_module(self._buffer) is not xp:
            self._buffer = xp.empty(sum(self.sizes), dtype=self.dtype)
        return self._buffer

    def _pack(self, field):
        flat = self._flat()
        offset = 0
        for blob, n in zip(self.params, self.sizes):
            flat[offset:offset + n] = getattr(blob, field).reshape(-1)
            offset += n
        return flat

    def _unpack(self, flat, field):
        offset = 0
        for blob, n in zip(self.params, self.sizes):
            getattr(blob, field)[...] = flat[offset:offset + n].reshape(blob.shape)
            offset += n

    def broadcast_weights(self):
        """Every rank takes rank 0's learnable params (after init, --weights or restore)."""
        if not isinstance(self.comm, Single) and self.params:
            flat = self._pack("data")
            self.comm.bcast(flat, root=0)
            self._unpack(flat, "data")

    def share_restored(self, solver_count, batches):
        """After rank 0 restored a snapshot: every rank takes its iteration, lr step, weights and history; returns
        (the solver_count the snapshot was written by, the train batches its run had read)."""
        if isinstance(self.comm, Single):
            return solver_count, batches
        solver = self.solver
        head = numpy.array([solver.iter, solver.current_step, solver_count, batches], dtype=numpy.int64)
        self.comm.bcast(head, root=0)
        solver.iter, solver.current_step, solver_count, batches = (int(v) for v in head)
        self.broadcast_weights()
        for array in solver.update.history:       # made contiguous by the update rule: reshape gives a view
            self.comm.bcast(array.reshape(-1), root=0)
        return solver_count, batches

    def reduce_gradients(self, solver=None):
        """Caffe's NCCL::on_gradients_ready: diff *= 1/solver_count, then sum over the ranks."""
        if isinstance(self.comm, Single) or not self.params:
            return
        started = time.perf_counter()
        flat = self._pack("diff")
        flat *= self.dtype.type(1.0 / self.size)
        self.comm.allreduce(flat)
        self._unpack(flat, "diff")
        self.reduce_seconds += time.perf_counter() - started

    def agree(self, loss, request):
        """The control step: (mean loss over the ranks, the action every rank takes). A non-finite loss on any rank
        makes the mean non-finite, so every rank stops as one diverged."""
        from solver.solver import NONE, SNAPSHOT, STOP
        bits = {NONE: 0, SNAPSHOT: SNAPSHOT_BIT, STOP: STOP_BIT}[request]
        rows = self.comm.gather_all([self.solver.iter, loss, bits], self.solver.iter)
        iters = rows[:, 0]
        if (iters != iters[0]).any():
            raise RankError(f"the ranks are at different iterations ({', '.join(str(int(i)) for i in iters)}): "
                            f"were they started from different snapshots?")
        bad = [r for r in range(self.size) if not numpy.isfinite(rows[r, 1])]
        if bad and self.is_root:
            log.error(f"the loss of {', '.join(self.comm.describe(r) for r in bad)} is not finite")
        flags = numpy.bitwise_or.reduce(rows[:, 2].astype(numpy.int64))
        action = STOP if flags & STOP_BIT else SNAPSHOT if flags & SNAPSHOT_BIT else NONE
        if flags & STOP_BIT and flags & SNAPSHOT_BIT:
            action = STOP                              # the stop writes the snapshot (snapshot_after_train)
        return float(rows[:, 1].mean()), action

    def keepalive(self):
        self.comm.keepalive()


def attach(solver, comm: Communicator) -> Parallel:
    """Make `solver` one rank of `comm` (the CLI's way): share its data, all-reduce its gradients before each update,
    start it from rank 0's weights."""
    parallel = Parallel(solver, comm)
    solver.add_callback(parallel.reduce_gradients, "gradients_ready")
    parallel.broadcast_weights()
    return parallel
