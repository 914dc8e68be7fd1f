"""`python -m solver time` (Caffe's `caffe time`) as a user runs it, and the Net timing hook it reads."""
import re
import time

from layers import Net
from tests.solver.test_cli import run

NET = """name: "timed"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "pool" bottom: "label" top: "loss" }
"""
LAYERS = ("data", "label", "conv", "relu", "pool", "loss")


def test_time_prints_caffes_lines(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    done = run(["time", "net.prototxt", "--iterations", "3"], tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stderr
    for name in LAYERS:
        assert re.search(rf"\] +{name}\tforward: [0-9.e+-]+ ms\.$", out, re.M), name
        assert re.search(rf"\] +{name}\tbackward: [0-9.e+-]+ ms\.$", out, re.M), name
    for line in ("Average Forward pass", "Average Backward pass", "Average Forward-Backward", "Total Time"):
        assert re.search(rf"\] {line}: [0-9.e+-]+ ms\.$", out, re.M), line
    assert len(re.findall(r"Iteration: \d+ forward-backward time: ", out)) == 3
    assert "Testing for 3 iterations." in out and "Initial loss: " in out


def test_time_refuses_a_missing_net(tmp_path):
    done = run(["time", "missing.prototxt"], tmp_path)
    assert done.returncode == 1 and "missing.prototxt" in done.stderr


def test_timing_hook_adds_up(tmp_path):
    net = Net(NET, phase="TRAIN")
    net.forward_backward()
    with net.timing() as times:
        start = time.perf_counter()
        for _ in range(2):
            net.forward()
            net.backward()
        wall = time.perf_counter() - start
    assert len(times.forward) == len(times.backward) == len(net.layers)
    assert all(t > 0 for t in times.forward)
    assert times.backward[0] == times.backward[1] == 0          # Input layers need no backward
    assert all(t > 0 for t in times.backward[2:])
    with net.timing() as again:               # the hook is off outside the block: nothing was added
        pass
    assert sum(again.forward) == 0
    assert sum(times.forward) + sum(times.backward) <= wall        # the layers' share of the passes' time
