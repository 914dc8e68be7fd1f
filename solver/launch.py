"""Starting the ranks of a data-parallel run (cf. tools/caffe.cpp's -gpu 0,1,2,3 and pycaffe's train.py).

`python -m solver S.prototxt --gpu 0,1,2,3` (or `--gpu all`) starts one process per GPU, as pycaffe's train.py
does: through mpiexec when mpi4py and an mpiexec are installed (the control step then names a rank that hung,
the sentinels one that died), else as child processes joined by an NCCL unique id (this process then watches
them and names a rank that ended). Each process trains on its GPU (--gpu's list, by rank) and all-reduces with
NCCL; without NCCL they all-reduce through MPI with host staging, and say so.

communicator(args) is what each rank trains in: NCCL, MPI or a single process.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

from layers import backend
from solver import parallel
from solver.log import get_logger

RANK_ENV, SIZE_ENV, UID_ENV = "FCN_SOLVER_RANK", "FCN_SOLVER_COUNT", "FCN_NCCL_UID"


def gpu_list(text):
    """--gpu's ids: "2" -> [2]; "0,1,2,3" -> [0, 1, 2, 3]; "all" -> every GPU CuPy sees ([0] without CUDA)."""
    if text == "all":
        return list(range(backend.device_count())) if backend.cuda_available() else [0]
    try:
        ids = [int(t) for t in str(text).split(",")]
    except ValueError:
        raise ValueError(f"--gpu takes a GPU id, ids separated by commas (0,1,2,3) or all; got {text!r}") from None
    if len(set(ids)) != len(ids):
        raise ValueError(f"--gpu {text} names a GPU twice; one process per GPU")
    return ids


def wants_processes(gpu):
    """Whether this process should start one process per GPU (it is not one of them already)."""
    return (gpu is not None and RANK_ENV not in os.environ and parallel.launched_size() == 1
            and len(gpu_list(gpu)) > 1)


def communicator(args):
    """The group this process trains in: started by main() without MPI (NCCL with the uid in the environment),
    started by mpiexec (MPI; with several --gpu ids, NCCL for the arrays), or alone."""
    timeout = args.timeout
    if RANK_ENV in os.environ:
        rank, size = int(os.environ[RANK_ENV]), int(os.environ[SIZE_ENV])
        backend.use_device(gpu_list(args.gpu)[rank])
        uid = parallel.uid_from_text(os.environ[UID_ENV])
        return parallel.NCCLCommunicator(rank, size, uid, timeout=timeout)
    comm = parallel.world(timeout)
    gpus = gpu_list(args.gpu) if args.gpu is not None else []
    if comm.size > 1 and len(gpus) > 1:
        if len(gpus) != comm.size:
            raise ValueError(f"--gpu {args.gpu} names {len(gpus)} GPUs but mpiexec started {comm.size} processes; "
                             f"give one GPU per process")
        if parallel.has_nccl():
            backend.use_device(gpus[comm.rank])
            return parallel.NCCLCommunicator(comm.rank, comm.size, control=comm, timeout=timeout)
        if comm.rank == 0:
            get_logger().warning("NCCL is not available (CuPy without NCCL, or no GPU): the ranks all-reduce "
                                 "through MPI, staging the arrays in host memory")
    return comm


def main(argv, args):
    """Start one `python -m solver` per GPU of --gpu and wait for them; the exit status is the worst of theirs."""
    log = get_logger()
    gpus = gpu_list(args.gpu)
    if not backend.cuda_available():
        log.error(f"--gpu {args.gpu}: no usable CUDA device (CuPy missing or no GPU found), so no process per GPU "
                  f"can start; leave out --gpu to train on the CPU, or run mpiexec -n N python -m solver ... for N "
                  f"CPU processes")
        return 1
    nccl = parallel.has_nccl()
    mpiexec = shutil.which("mpiexec")
    command = [sys.executable, "-m", "solver", *argv]
    if parallel.has_mpi() and mpiexec:
        log.info(f"Starting {len(gpus)} processes (GPUs {', '.join(map(str, gpus))}) with {mpiexec}; they "
                 f"all-reduce with {'NCCL' if nccl else 'MPI through host memory (no NCCL)'}")
        return subprocess.call([mpiexec, "-n", str(len(gpus)), *command])
    if not nccl:
        log.error(f"--gpu {args.gpu}: one process per GPU needs NCCL (CuPy with NCCL) or MPI (pip install -e "
                  f"\".[mpi]\"); neither is installed")
        return 1
    from cupy.cuda import nccl as cupy_nccl
    uid = parallel.uid_to_text(cupy_nccl.get_unique_id())
    log.info(f"Starting {len(gpus)} processes (GPUs {', '.join(map(str, gpus))}), all-reducing with NCCL")
    children = [subprocess.Popen(command, env=dict(os.environ, **{RANK_ENV: str(r), SIZE_ENV: str(len(gpus)),
                                                                   UID_ENV: uid}))
                for r in range(len(gpus))]
    return watch(children, gpus)


def watch(children, gpus):
    """Wait for the ranks; when one fails, name it and stop the others (they would wait for it)."""
    log = get_logger()
    try:
        while True:
            codes = [c.poll() for c in children]
            failed = [r for r, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                r = failed[0]
                log.error(f"rank {r} (GPU {gpus[r]}, pid {children[r].pid}) ended with status {codes[r]}"
                          f"{_signal_name(codes[r])}; stopping the other ranks")
                for c in children:
                    if c.poll() is None:
                        c.send_signal(signal.SIGTERM)
                for c in children:
                    c.wait()
                return 1
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.2)
    except KeyboardInterrupt:          # the children got the terminal's SIGINT too: they stop and snapshot
        return max(c.wait() for c in children) or 130


def _signal_name(code):
    if code is not None and code < 0:
        try:
            return f" (killed by {signal.Signals(-code).name})"
        except ValueError:
            return ""
    return ""
