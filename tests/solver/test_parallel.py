"""Data-parallel training with MPI, run as a user runs it: `mpiexec -n 2 python -m solver ...` in a subprocess.

2 ranks equal one process with iter_size 2 (SGD, Adam; HDF5Data with shuffle), snapshots are written once (rank 0),
a run stopped by SIGINT on one rank and resumed equals an uninterrupted one, a killed or hung rank ends the run
with a message naming it, and without mpi4py mpiexec gets one clear message."""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy
import pytest

from netspec import io as netio
from tests.solver.tiny import NET, make_tiny

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="needs mpiexec (pip install mpich)")

ROOT = pathlib.Path(__file__).resolve().parents[2]

# a pass-through Python layer that, on one rank at one train forward, acts: PROBE="rank:forward:action"
PROBE = '''import os, signal, time
from layers import caffe_compat as caffe


class Probe(caffe.Layer):
    def setup(self, bottom, top):
        self.count = 0
        spec = os.environ.get("PROBE")
        self.spec = spec.split(":") if spec else None

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data
        if self.phase == caffe.TEST and os.environ.get("SLOW_TEST"):
            time.sleep(float(os.environ["SLOW_TEST"]))
        if self.spec and self.phase == caffe.TRAIN and int(os.environ.get("PMI_RANK", 0)) == int(self.spec[0]):
            if self.count == int(self.spec[1]):
                action = self.spec[2]
                if action == "hang":
                    time.sleep(60)
                elif action == "touch":
                    open("started", "w").close()
                else:
                    os.kill(os.getpid(), getattr(signal, action))
            self.count += 1

    def backward(self, top, propagate_down, bottom):
        pass
'''
PROBE_NET = NET.replace('bottom: "data" top: "ip"', 'bottom: "probe" top: "ip"').replace(
    'layer { name: "ip"', 'layer { name: "probe" type: "Python" bottom: "data" top: "probe" '
                          'python_param { module: "probe" layer: "Probe" } }\nlayer { name: "ip"')
SHUFFLE_NET = NET.replace('source: "train.txt" batch_size: 4', 'source: "train.txt" batch_size: 4 shuffle: true')


def env(**extra):
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **extra)


def train(folder, ranks, *args, mpiexec_flags=(), timeout=60, **extra_env):
    command = [sys.executable, "-m", "solver", "solver.prototxt", *args]
    if ranks:
        command = [MPIEXEC, *mpiexec_flags, "-n", str(ranks), *command]
    started = time.monotonic()
    result = subprocess.run(command, cwd=folder, env=env(**extra_env), capture_output=True, text=True,
                            timeout=timeout)
    result.seconds = time.monotonic() - started
    return result


def weights(path):
    return {layer.name: [netio.blob_to_array(b) for b in layer.blobs]
            for layer in netio.read_weights(str(path)).layer if layer.blobs}


def assert_same(a, b, rtol=1e-6):
    """The weights of two .caffemodel files agree to rtol (0: bit for bit)."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        for x, y in zip(wa[name], wb[name]):
            if rtol == 0:
                numpy.testing.assert_array_equal(x, y, err_msg=name)
            else:
                numpy.testing.assert_allclose(x, y, rtol=rtol, atol=1e-7 * numpy.abs(y).max(), err_msg=name)


def problem(tmp_path, name, net=NET, **solver):
    folder = tmp_path / name
    folder.mkdir()
    make_tiny(folder, net=net, **dict(dict(max_iter=5, test_interval=3, snapshot=0, display=1), **solver))
    (folder / "probe.py").write_text(PROBE)
    return folder


@pytest.mark.parametrize("kind,net", [("SGD", NET), ("Adam", SHUFFLE_NET)], ids=["SGD", "Adam-shuffled"])
def test_two_ranks_equal_one_process_with_iter_size_2(tmp_path, kind, net):
    extra = {"type": f'"{kind}"'} if kind == "SGD" else {"type": '"Adam"', "base_lr": 0.01, "momentum2": 0.999}
    two = problem(tmp_path, "two", net=net, **extra)
    one = problem(tmp_path, "one", net=net, iter_size=2, **extra)
    r2 = train(two, 2)
    assert r2.returncode == 0, r2.stderr[-3000:]
    r1 = train(one, 0)
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert_same(two / "snap" / "tiny_iter_5.caffemodel", one / "snap" / "tiny_iter_5.caffemodel")
    assert "Data-parallel training on 2 ranks (MPI)" in r2.stderr
    # rank 0 logs the mean loss over the ranks: the single process's loss at iter_size 2
    losses = [[line.split("loss = ")[1] for line in r.stderr.splitlines() if "), loss = " in line] for r in (r1, r2)]
    numpy.testing.assert_allclose(numpy.float64(losses[0]), numpy.float64(losses[1]), rtol=1e-5)
    assert "rank 1:" not in r2.stderr                                  # only rank 0 logs


def test_snapshots_written_once_by_rank_0(tmp_path):
    folder = problem(tmp_path, "snap", snapshot=2, max_iter=4)
    result = train(folder, 2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (folder / "snap").iterdir()) == [
        "tiny_iter_2.caffemodel", "tiny_iter_2.solverstate", "tiny_iter_4.caffemodel", "tiny_iter_4.solverstate"]
    assert result.stderr.count("Snapshotting to binary proto file") == 2
    assert result.stderr.count("Testing net (#0)") == 2            # iterations 0 and 3, on rank 0 only


def test_sigint_on_one_rank_stops_all_and_resume_equals_uninterrupted(tmp_path):
    whole = problem(tmp_path, "whole", net=PROBE_NET, max_iter=6)
    parts = problem(tmp_path, "parts", net=PROBE_NET, max_iter=6)
    assert train(whole, 2).returncode == 0
    stopped = train(parts, 2, PROBE="1:2:SIGINT")                  # rank 1, during iteration 2
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "Optimization stopped early." in stopped.stderr
    assert sorted(p.name for p in (parts / "snap").iterdir()) == ["tiny_iter_3.caffemodel", "tiny_iter_3.solverstate"]
    # rank 1 is given a path that does not exist: rank 0 alone reads the snapshot and shares it
    command = [sys.executable, "-m", "solver", "solver.prototxt", "--snapshot"]
    resumed = subprocess.run([MPIEXEC, "-n", "1", *command, "snap/tiny_iter_3.solverstate", ":", "-n", "1",
                              *command, "nowhere/tiny_iter_3.solverstate"], cwd=parts, env=env(),
                             capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same(parts / "snap" / "tiny_iter_6.caffemodel", whole / "snap" / "tiny_iter_6.caffemodel", rtol=0)


def test_resume_with_other_rank_count_says_what_changes(tmp_path):
    two = problem(tmp_path, "two", max_iter=4, snapshot=2)
    one = problem(tmp_path, "one", max_iter=4, snapshot=2, iter_size=2)
    assert train(two, 2).returncode == 0
    assert train(one, 0).returncode == 0
    # one process at iter_size 2 goes on from the 2-rank snapshot exactly as the 2 ranks went on
    (one / "snap" / "tiny_iter_4.caffemodel").unlink()
    resumed = train(one, 0, "--snapshot", str(two / "snap" / "tiny_iter_2.solverstate"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert ("written by 2 rank(s) and 1 go on from it: each iteration now averages the gradients of 1 x 2 "
            "(iter_size) batches (the snapshot's run averaged 2 batches per iteration)") in resumed.stderr
    assert_same(one / "snap" / "tiny_iter_4.caffemodel", two / "snap" / "tiny_iter_4.caffemodel")


@pytest.mark.parametrize("rank", [1, 0])
def test_killed_rank_ends_the_run_and_is_named(tmp_path, rank):
    # MPICH's mpiexec ends every rank at once; the sentinels name the one that ended first
    folder = problem(tmp_path, "kill", net=PROBE_NET, max_iter=50)
    result = train(folder, 2, PROBE=f"{rank}:3:SIGKILL", timeout=30)
    assert result.returncode != 0
    assert result.seconds < 15
    out = result.stdout + result.stderr
    assert f"rank {rank} (pid " in out and "ended without finishing (killed, or crashed" in out, out[-3000:]
    assert out.count("ended without finishing") == 1                # the others were ended by mpiexec


def test_hung_rank_is_named_after_the_timeout(tmp_path):
    folder = problem(tmp_path, "hang", net=PROBE_NET, max_iter=50)
    result = train(folder, 2, "--timeout", "2", PROBE="1:2:hang", timeout=40)
    assert result.returncode != 0
    assert result.seconds < 20
    assert "rank 1 (pid" in result.stderr and "did not finish iteration 2: died or hung (waited 2 s" in \
        result.stderr, result.stderr[-3000:]
    assert "ended without finishing" not in result.stdout + result.stderr    # rank 0 ended the job, and said why


def test_without_mpi4py_mpiexec_gets_one_message(tmp_path):
    stub = tmp_path / "stub" / "mpi4py"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('mpi4py hidden by the test')\n")
    folder = problem(tmp_path, "nompi")
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "solver", "solver.prototxt"], cwd=folder,
                            env=dict(env(), PYTHONPATH=f"{stub.parent}{os.pathsep}{ROOT}"), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.count("mpi4py is not installed") == 1, result.stderr
    assert 'pip install -e ".[mpi]"' in result.stderr


# pycaffe's train.py, one process's part (solve()), with the ranks mpiexec gives instead of multiprocessing's
TRAIN_PY = '''import sys
import fcn_caffe as caffe
from mpi4py import MPI

rank, count = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
caffe.set_solver_count(count)
caffe.set_solver_rank(rank)
caffe.set_multiprocess(True)
solver = caffe.SGDSolver("solver.prototxt")
nccl = caffe.NCCL(solver, caffe.NCCL.new_uid())
nccl.bcast()
solver.add_callback(nccl)
if solver.param.layer_wise_reduce:
    solver.net.after_backward(nccl)
solver.step(solver.param.max_iter)
if rank == 0:
    solver.net.save("final.caffemodel")
'''


def test_pycaffe_train_py_flow_over_mpi_equals_iter_size_2(tmp_path):
    two = problem(tmp_path, "two")
    one = problem(tmp_path, "one", iter_size=2)
    (two / "train.py").write_text(TRAIN_PY)
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "train.py"], cwd=two, env=env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert train(one, 0).returncode == 0
    assert_same(two / "final.caffemodel", one / "snap" / "tiny_iter_5.caffemodel")


def test_sighup_on_one_rank_snapshots_once_and_goes_on(tmp_path):
    folder = problem(tmp_path, "hup", net=PROBE_NET, max_iter=5, snapshot_after_train="false")
    result = train(folder, 2, PROBE="1:1:SIGHUP")                   # rank 1, during iteration 1
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (folder / "snap").iterdir()) == ["tiny_iter_2.caffemodel", "tiny_iter_2.solverstate"]
    assert "Optimization Done." in result.stderr


def test_a_nan_loss_on_one_rank_stops_every_rank(tmp_path):
    folder = tmp_path / "nan"
    folder.mkdir()
    make_tiny(folder, nan_row=5, max_iter=5, test_interval=3, snapshot=0)   # rows 4-7: rank 1's first batch
    result = train(folder, 2)
    assert result.returncode != 0
    assert "the loss of rank 1 (pid" in result.stderr and "is not finite" in result.stderr, result.stderr[-3000:]
    assert "Iteration 0: the loss is nan" in result.stderr


def test_rank_0_testing_longer_than_the_timeout_is_not_a_hang(tmp_path):
    folder = problem(tmp_path, "slow", net=PROBE_NET, max_iter=3, test_interval=2, test_iter=4)
    result = train(folder, 2, "--timeout", "1", SLOW_TEST="0.4")  # tests of 4 forwards of 0.4 s
    assert result.returncode == 0, result.stderr[-3000:]


def test_an_error_on_one_rank_ends_every_rank_and_is_logged_by_it(tmp_path):
    folder = problem(tmp_path, "error")
    command = [sys.executable, "-m", "solver", "solver.prototxt"]
    started = time.monotonic()
    result = subprocess.run([MPIEXEC, "-n", "1", *command, ":", "-n", "1", *command, "--weights", "missing.caffemodel"],
                            cwd=folder, env=env(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert time.monotonic() - started < 15
    assert "rank 1: weights file 'missing.caffemodel' not found" in result.stderr, result.stderr[-2000:]


def test_every_rank_starts_from_rank_0s_weights(tmp_path):
    plain = problem(tmp_path, "plain", max_iter=3)
    mixed = problem(tmp_path, "mixed", max_iter=3)
    other = problem(tmp_path, "other", max_iter=1, random_seed=7)
    assert train(plain, 2).returncode == 0
    assert train(other, 0).returncode == 0
    # rank 1 alone finetunes from other weights: the broadcast replaces them with rank 0's
    command = [sys.executable, "-m", "solver", "solver.prototxt"]
    result = subprocess.run([MPIEXEC, "-n", "1", *command, ":", "-n", "1", *command, "--weights",
                             str(other / "snap" / "tiny_iter_1.caffemodel")], cwd=mixed, env=env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same(mixed / "snap" / "tiny_iter_3.caffemodel", plain / "snap" / "tiny_iter_3.caffemodel", rtol=0)


def test_ctrl_c_on_mpiexec_stops_every_rank_with_one_snapshot(tmp_path):
    folder = problem(tmp_path, "ctrl-c", net=PROBE_NET, max_iter=10 ** 6, test_interval=10 ** 6)
    job = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "solver", "solver.prototxt"], cwd=folder,
                           env=env(PROBE="0:5:touch"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (folder / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGINT)                   # as Ctrl-C in the terminal: mpiexec passes it to every rank
    out, err = job.communicate(timeout=30)
    assert job.returncode == 0, err[-3000:]
    assert "Optimization stopped early." in err
    assert len(list((folder / "snap").glob("*.caffemodel"))) == 1
