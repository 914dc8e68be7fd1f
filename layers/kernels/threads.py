"""The CPU kernels' threads: a persistent pool that shares chunks of work out (ctypes BLAS calls and numpy
operations release the GIL), parallel_map for other numpy work (Pooling, ReLU, depthwise), per-thread scratch.

While the pool works, the OpenBLAS behind scipy is made single-threaded and the pool takes its thread count: a
multi-threaded BLAS pays a thread wake-up on every call, which on a busy machine costs milliseconds."""
import ctypes
import ctypes.util
import glob
import itertools
import os
import queue
import threading


def blas_thread_control():
    """(get, set) of the thread count of the OpenBLAS behind scipy, or None (then BLAS keeps its threads).

    Looks where scipy's wheels bundle OpenBLAS, then for a system OpenBLAS, and takes a library only if this
    process has loaded it already (RTLD_NOLOAD), i.e. the one scipy links against."""
    try:
        import scipy
        import scipy.linalg  # noqa: F401   (loads the BLAS, so that RTLD_NOLOAD finds it)
        here = os.path.dirname(scipy.__file__)
        paths = sorted(glob.glob(os.path.join(here, "..", "scipy.libs", "*openblas*")) +
                       glob.glob(os.path.join(here, ".dylibs", "*openblas*")))
        system = ctypes.util.find_library("openblas")
        for path in paths + ([system] if system else []):
            try:
                lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
            except OSError:                     # not loaded: not the BLAS scipy uses
                continue
            for prefix in ("scipy_openblas", "openblas"):
                get = getattr(lib, prefix + "_get_num_threads", None)
                put = getattr(lib, prefix + "_set_num_threads", None)
                if get is not None and put is not None:
                    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                    return get, put
    except Exception:                           # no RTLD_NOLOAD (Windows), no scipy: leave BLAS as it is
        pass
    return None


BLAS_THREADS = blas_thread_control()


class _Job:
    """Chunks 0..count-1 of fn, taken one at a time by whichever thread is free (the caller included)."""

    def __init__(self, fn, count):
        self.fn, self.count = fn, count
        self.next = itertools.count()
        self.left = count
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.error = None

    def work(self):
        while True:
            i = next(self.next)
            if i >= self.count:
                return
            try:
                self.fn(i)
            except BaseException as e:          # raised again in the caller
                self.error = self.error or e
            with self.lock:
                self.left -= 1
                if self.left == 0:
                    self.done.set()


class Pool:
    """Persistent helper threads. The caller works too and waits only for chunks a helper has started, so a
    helper that the OS is slow to schedule (or that a fork left behind) costs nothing. Enter it (`with POOL:`)
    around kernel calls; `size` is the number of threads, the caller's included."""

    def __init__(self):
        self.size = 1
        self.jobs = queue.SimpleQueue()
        self.helpers = 0
        self.depth = 0
        self.lock = threading.Lock()

    def _serve(self):
        while True:
            self.jobs.get().work()

    def __enter__(self):
        """Make BLAS single-threaded while the kernels run, and size the pool to the threads BLAS had."""
        with self.lock:
            if self.depth == 0 and BLAS_THREADS is not None:
                self.saved = BLAS_THREADS[0]()
                self.size = max(1, self.saved)
                BLAS_THREADS[1](1)
                while self.helpers < self.size - 1:
                    threading.Thread(target=self._serve, daemon=True, name="fcn-caffe-conv").start()
                    self.helpers += 1
            self.depth += 1
        return self

    def __exit__(self, *exc):
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and BLAS_THREADS is not None:
                BLAS_THREADS[1](self.saved)

    def map(self, fn, count):
        """fn(0), ..., fn(count - 1), shared out to the pool (inside `with POOL:`)."""
        if count <= 1 or self.size <= 1:
            for i in range(count):
                fn(i)
            return
        job = _Job(fn, count)
        for _ in range(min(self.size, count) - 1):
            self.jobs.put(job)
        job.work()
        job.done.wait()
        if job.error is not None:
            raise job.error


POOL = Pool()


def parallel_map(fn, count):
    """fn(0), ..., fn(count - 1) on the CPU kernel threads (for numpy work that releases the GIL)."""
    with POOL:
        POOL.map(fn, count)


class PerThread(dict):
    """Lazily built per-thread scratch (buffers, a Gemm) for one kernel call."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def get(self):
        key = threading.get_ident()
        if key not in self:
            self[key] = self.make()
        return self[key]
