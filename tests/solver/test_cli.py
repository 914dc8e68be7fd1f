"""`python -m solver` in a subprocess: a whole run from another folder, resume with --snapshot (ending exactly where
an uninterrupted run ends), SIGINT (snapshot and clean stop), SIGHUP (snapshot and go on), and its errors."""
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy
import pytest

from layers import backend
from netspec import caffe_pb2, io as netio
from solver import get_solver
from tests.solver.tiny import make_tiny

ROOT = pathlib.Path(__file__).resolve().parents[2]


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                PYTHONUNBUFFERED="1")


def run(args, cwd, timeout=60):
    return subprocess.run([sys.executable, "-m", "solver", *args], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def weights(path):
    return {l.name: [netio.blob_to_array(b) for b in l.blobs] for l in netio.read_caffemodel(str(path)).layer}


def test_train_then_resume_from_another_folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "cwd").mkdir()
    make_tiny(tmp_path / "model", max_iter=4, snapshot_after_train="true")
    done = run(["../model/solver.prototxt"], tmp_path / "cwd")
    assert done.returncode == 0, done.stderr
    assert "Optimization Done." in done.stderr and "] Iteration 3 (" in done.stderr
    state = tmp_path / "model" / "snap" / "tiny_iter_4.solverstate"
    assert state.exists()
    # resume to 7 iterations, with the state given relative to the working directory
    (tmp_path / "model" / "solver.prototxt").write_text(
        (tmp_path / "model" / "solver.prototxt").read_text().replace("max_iter: 4", "max_iter: 7"))
    resumed = run(["../model/solver.prototxt", "--snapshot", "../model/snap/tiny_iter_4.solverstate"],
                  tmp_path / "cwd")
    assert resumed.returncode == 0, resumed.stderr
    assert "Restoring previous solver status from ../model/snap/tiny_iter_4.solverstate" in resumed.stderr
    assert "] Iteration 3 (" not in resumed.stderr and "] Iteration 6 (" in resumed.stderr
    # the same 7 iterations without a stop (the API, same seed, so the same initial weights)
    (tmp_path / "straight").mkdir()
    straight = get_solver(make_tiny(tmp_path / "straight", max_iter=7))
    straight.step(7)
    ours = weights(tmp_path / "model" / "snap" / "tiny_iter_7.caffemodel")
    for i, blob in enumerate(straight.net.params["ip"]):
        assert numpy.array_equal(ours["ip"][i], blob.data)


def wait_for(proc, text, lines, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return line
    raise AssertionError(f"never saw {text!r}; got:\n{''.join(lines[-20:])}")


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_sighup_snapshots_and_sigint_stops_cleanly(tmp_path):
    make_tiny(tmp_path, max_iter=10 ** 7, test_interval=10 ** 6, snapshot_after_train="true")
    proc = subprocess.Popen([sys.executable, "-m", "solver", "solver.prototxt"], cwd=tmp_path, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        wait_for(proc, "] Iteration 3 (", lines)
        proc.send_signal(signal.SIGHUP)
        hup = wait_for(proc, "Snapshotting solver state to binary proto file", lines)
        wait_for(proc, "] Iteration", lines)                # training goes on after SIGHUP
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines.append(rest)
    log = "".join(lines)
    assert proc.returncode == 0, log
    assert "Optimization stopped early." in log and "Traceback" not in log
    snaps = sorted(os.listdir(tmp_path / "snap"))
    states = [n for n in snaps if n.endswith(".solverstate")]
    assert len(states) == 2 and any(hup.strip().endswith(name) for name in states)
    for name in states:                                    # each solverstate's model is there, the right iteration
        state = netio.read_solverstate(str(tmp_path / "snap" / name))
        assert name == f"tiny_iter_{state.iter}.solverstate"
        assert state.learned_net == f"snap/tiny_iter_{state.iter}.caffemodel"
        assert (tmp_path / state.learned_net).exists()
    assert not [n for n in snaps if n.endswith(".tmp")]


def test_errors_exit_nonzero_with_a_message(tmp_path):
    missing = run(["nowhere/solver.prototxt"], tmp_path)
    assert missing.returncode == 1
    assert "solver file 'nowhere/solver.prototxt' not found" in missing.stderr and "Traceback" not in missing.stderr
    make_tiny(tmp_path)
    both = run(["solver.prototxt", "--weights", "a.caffemodel", "--snapshot", "b.solverstate"], tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr


def test_nan_loss_exits_1_and_keeps_the_last_good_snapshot(tmp_path):
    make_tiny(tmp_path, nan_row=8, snapshot=1, test_interval=1000)
    proc = run(["solver.prototxt"], tmp_path)
    assert proc.returncode == 1
    assert "Iteration 2: the loss is nan" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path / "snap"))[-1] == "tiny_iter_2.solverstate"


@pytest.mark.skipif(backend.cuda_available(), reason="checks the fallback of a machine without CUDA")
def test_gpu_flag_falls_back_to_the_cpu_with_one_message(tmp_path):
    make_tiny(tmp_path, max_iter=2)
    proc = run(["solver.prototxt", "--gpu", "0", "--weights", "missing.caffemodel"], tmp_path)
    assert proc.stderr.count("running on the CPU") == 1
    assert proc.returncode == 1 and "weights file 'missing.caffemodel' not found" in proc.stderr


def test_weights_flag_loads_each_comma_separated_file_in_order(tmp_path, monkeypatch, capsys):
    """--weights A,B copies A then B by layer name (the later file wins), as `caffe train --weights` does; run
    in-process with max_iter 0, so the final snapshot holds exactly the loaded weights."""
    from solver.__main__ import main
    make_tiny(tmp_path, max_iter=0)
    monkeypatch.chdir(tmp_path)
    values = {}
    for name, seed in (("a", 1), ("b", 2)):
        r = numpy.random.default_rng(seed)
        values[name] = [r.normal(size=(3, 5)).astype(numpy.float32), r.normal(size=3).astype(numpy.float32)]
        param = caffe_pb2.NetParameter()
        ip = param.layer.add(name="ip", type="InnerProduct")
        for array in values[name]:
            ip.blobs.add().CopyFrom(netio.array_to_blob(array))
        netio.write_caffemodel(param, str(tmp_path / f"{name}.caffemodel"))
    for order in (("a", "b"), ("b", "a")):
        assert main(["solver.prototxt", "--weights", ",".join(f"{n}.caffemodel" for n in order)]) == 0
        saved = weights(tmp_path / "snap" / "tiny_iter_0.caffemodel")["ip"]
        for got, want in zip(saved, values[order[-1]]):
            numpy.testing.assert_array_equal(got, want)
    assert main(["solver.prototxt", "--weights", "a.caffemodel,missing.caffemodel"]) == 1
    assert "weights file 'missing.caffemodel' not found" in capsys.readouterr().err


def test_an_unwritable_snapshot_prefix_is_refused_before_the_first_iteration(tmp_path):
    (tmp_path / "blocker").write_text("a file where the snapshot folder should be\n")
    make_tiny(tmp_path, snapshot_prefix='"blocker/snap/tiny"', snapshot=0)      # only the final snapshot
    proc = run(["solver.prototxt"], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("E")]
    assert len(errors) == 1 and errors[0].endswith(
        f"cannot write snapshots to {tmp_path / 'blocker' / 'snap'} (snapshot_prefix \"blocker/snap/tiny\"): "
        f"{tmp_path / 'blocker'} is a file, not a folder")
    assert "] Iteration" not in proc.stderr                     # refused before training, not after it


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_abandoned_temporaries_go_at_start_and_a_failed_ctrl_c_snapshot_says_why(tmp_path):
    make_tiny(tmp_path, max_iter=10 ** 7, test_interval=10 ** 6, snapshot=0)
    (tmp_path / "snap").mkdir()
    abandoned = [".tiny_iter_4.caffemodel.0123456789ab.tmp", ".tiny_iter_4.solverstate.h5.abcdef012345.tmp"]
    kept = [".other_iter_4.caffemodel.0123456789ab.tmp", "notes.tmp", "tiny_iter_2.caffemodel"]
    for name in abandoned + kept:
        (tmp_path / "snap" / name).write_bytes(b"partial")
    proc = subprocess.Popen([sys.executable, "-m", "solver", "solver.prototxt"], cwd=tmp_path, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        wait_for(proc, "] Iteration 3 (", lines)
        assert sorted(os.listdir(tmp_path / "snap")) == sorted(kept)         # removed at start, nothing else
        for name in kept:
            (tmp_path / "snap" / name).unlink()
        (tmp_path / "snap").rmdir()
        (tmp_path / "snap").write_text("the snapshot folder became a file\n")
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(lines) + rest
    assert sum(f"Removed {tmp_path / 'snap' / name}, left by an interrupted snapshot" in log
               for name in abandoned) == 2
    assert proc.returncode == 1 and "Traceback" not in log
    error = next(line for line in log.splitlines() if line.startswith("E"))
    assert re.search(rf"cannot write the snapshot {re.escape(str(tmp_path / 'snap'))}/tiny_iter_\d+\.caffemodel: "
                     rf"its folder cannot be created \(snapshot_prefix \"snap/tiny\"\): "
                     rf"{re.escape(str(tmp_path / 'snap'))} is a file, not a folder$", error), error
