"""`--gpu 0,1,...` (one process per GPU): its parsing, its message without CUDA, and the watcher that names a rank
that ended and stops the others (the launch without mpiexec)."""
import subprocess
import sys
import time

import pytest

from layers import backend
from solver import launch
from tests.solver.test_cli import run
from tests.solver.tiny import make_tiny


def test_gpu_lists():
    assert launch.gpu_list("2") == [2]
    assert launch.gpu_list("0,1,2,3") == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="names a GPU twice"):
        launch.gpu_list("0,0")
    with pytest.raises(ValueError, match="ids separated by commas"):
        launch.gpu_list("0;1")


@pytest.mark.skipif(backend.cuda_available(), reason="the message of a machine without CUDA")
def test_several_gpus_without_cuda_say_so(tmp_path):
    make_tiny(tmp_path)
    result = run(["solver.prototxt", "--gpu", "0,1"], cwd=tmp_path)
    assert result.returncode == 1
    assert "--gpu 0,1: no usable CUDA device" in result.stderr and "mpiexec -n N" in result.stderr


def test_the_watcher_names_the_rank_that_ended_and_stops_the_others(capsys):
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    killed = [sys.executable, "-c", "import os, signal, time; time.sleep(0.3); os.kill(os.getpid(), signal.SIGKILL)"]
    children = [subprocess.Popen(sleeper), subprocess.Popen(killed)]
    started = time.monotonic()
    assert launch.watch(children, [0, 1]) == 1
    assert time.monotonic() - started < 10
    assert children[0].returncode is not None                      # stopped, not left running
    assert f"rank 1 (GPU 1, pid {children[1].pid}) ended with status -9 (killed by SIGKILL)" in capsys.readouterr().err


@pytest.mark.parametrize("uid", [bytes(range(128)), tuple(range(-64, 64))])
def test_nccl_uids_pass_through_the_environment(uid):
    from solver import parallel
    assert parallel.uid_from_text(parallel.uid_to_text(uid)) == uid
