"""The multi-GPU path on one GPU (-m gpu): NCCL as a communicator of one rank (cupy.cuda.nccl), the MPI path with
its host staging of device arrays, and both inside training against a plain GPU run; then two processes sharing
the one GPU through MPI's host staging equal one GPU process at iter_size 2. Without CuPy and a CUDA device these
are skipped; the NCCL ones also need CuPy's NCCL, the MPI ones mpi4py and mpiexec."""
import shutil
import subprocess
import sys

import numpy
import pytest

from layers import backend
from solver import get_solver, parallel
from tests.conftest import gpu
from tests.solver.test_parallel import assert_same, env, problem
from tests.solver.tiny import make_tiny

pytestmark = gpu
needs_nccl = pytest.mark.skipif(not parallel.has_nccl(), reason="needs CuPy's NCCL (cupy.cuda.nccl)")
needs_mpi = pytest.mark.skipif(not parallel.has_mpi() or shutil.which("mpiexec") is None,
                               reason="needs mpi4py and mpiexec (pip install -e \".[mpi]\")")


def nccl_one_rank():
    from cupy.cuda import nccl
    backend.use_device(0)
    return parallel.NCCLCommunicator(0, 1, nccl.get_unique_id())


def mpi_self():
    from mpi4py import MPI
    return parallel.MPICommunicator(MPI.COMM_SELF)


def communicators():
    return [pytest.param(nccl_one_rank, id="nccl", marks=needs_nccl),
            pytest.param(mpi_self, id="mpi-host-staged", marks=needs_mpi)]


@pytest.mark.parametrize("make", communicators())
def test_one_rank_collectives_on_device_arrays(make):
    import cupy
    comm = make()
    a = cupy.arange(1000, dtype=cupy.float32) * 0.5
    want = cupy.asnumpy(a)
    comm.allreduce(a)                       # a sum over one rank: unchanged, and still on the device
    comm.bcast(a)
    assert isinstance(a, cupy.ndarray)
    numpy.testing.assert_array_equal(cupy.asnumpy(a), want)
    rows = comm.gather_all([3.0, 1.5, 2.0], 3)
    numpy.testing.assert_array_equal(rows, [[3.0, 1.5, 2.0]])


def train(path, comm=None, steps=4):
    solver = get_solver(path, device=0)
    if comm is not None:
        parallel.attach(solver, comm)
    solver.step(steps)
    return [backend.to_cpu(b.data).copy() for b in solver.net.learnable_params]


@pytest.mark.parametrize("make", communicators())
def test_training_through_a_one_rank_group_equals_plain_gpu_training(tmp_path, make):
    path = make_tiny(tmp_path, type='"Adam"', base_lr=0.01, momentum2=0.999, test_interval=3)
    plain = train(path)
    grouped = train(path, make())
    for a, b in zip(plain, grouped):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@needs_nccl
@needs_mpi
def test_nccl_and_host_staged_mpi_reduce_alike(tmp_path):
    import cupy
    x = cupy.random.default_rng(0).standard_normal(1 << 20, dtype=cupy.float32)
    a, b = x.copy(), x.copy()
    nccl_one_rank().allreduce(a)
    mpi_self().allreduce(b)
    numpy.testing.assert_array_equal(cupy.asnumpy(a), cupy.asnumpy(b))


@needs_mpi
def test_two_processes_on_one_gpu_host_staged_equal_iter_size_2(tmp_path):
    two = problem(tmp_path, "two")
    one = problem(tmp_path, "one", iter_size=2)
    command = [sys.executable, "-m", "solver", "solver.prototxt", "--gpu", "0"]
    r2 = subprocess.run([shutil.which("mpiexec"), "-n", "2", *command], cwd=two, env=env(), capture_output=True,
                        text=True, timeout=120)
    assert r2.returncode == 0, r2.stderr[-3000:]
    r1 = subprocess.run(command, cwd=one, env=env(), capture_output=True, text=True, timeout=120)
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert_same(two / "snap" / "tiny_iter_5.caffemodel", one / "snap" / "tiny_iter_5.caffemodel", rtol=1e-5)
