"""The GPU benchmark's and the GPU check's CPU-side logic: arguments, the plan (--dry-run), the TF32 switch, the
children's measuring code (on a small FCN-like net, with the simulated GPU of tests/cuda_sim.py), the table, and
the summary bench/gpu_check.sh prints from pytest's JUnit XML, the parity report and the benchmark's JSON."""
import json
import subprocess
import sys

import numpy
import pytest

from bench import cpu_fcn8s, gpu_fcn8s, gpu_report
from tests import cuda_sim
from tests.conftest import ROOT


def bench(*args):
    return subprocess.run([sys.executable, "-m", "bench.gpu_fcn8s", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_dry_run_checks_the_nets_and_prints_the_plan():
    done = bench("--dry-run", "--repeats", "3", "--device", "1")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "prototxt/voc-fcn8s" in out and "train 50:" in out and "18 Convolution" in out and "3 Deconvolution" in out
    assert "input: 1x3x500x500; GPU 1; 3 timed runs per task" in out and "TF32 off" in out
    assert "paper: 175 ms forward (Caffe, Tesla K40c)" in out
    assert "TF32 on" in bench("--dry-run", "--tf32").stdout
    assert "PyTorch" not in bench("--dry-run", "--no-torch").stdout.split("sides:")[1]


@pytest.mark.parametrize("args, message", [
    (["--size", "16"], "--size must be at least 32"), (["--repeats", "0"], "--repeats must be at least 1"),
    (["--device", "-1"], "--device must be a GPU id"), (["--size", "big"], "invalid int value"),
])
def test_bad_arguments_are_refused(args, message):
    done = bench(*args, "--dry-run")
    assert done.returncode == 2 and message in done.stderr


def test_tf32_stays_off_unless_asked_for():
    env = gpu_fcn8s.tf32_environment({"CUPY_TF32": "1", "PATH": "/bin"}, False)
    assert "CUPY_TF32" not in env and env["PATH"] == "/bin"
    assert gpu_fcn8s.tf32_environment({}, True)["CUPY_TF32"] == "1"


TINY = """
layer {{ name: "input" type: "Input" top: "data" {label_top}
        input_param {{ shape {{ dim: 1 dim: 3 dim: {size} dim: {size} }} {label_shape} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: 4 kernel_size: 3 pad: 10 }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "drop1" type: "Dropout" bottom: "pool1" top: "pool1" dropout_param {{ dropout_ratio: 0.5 }} }}
layer {{ name: "score_fr" type: "Convolution" bottom: "pool1" top: "score_fr"
        convolution_param {{ num_output: 3 kernel_size: 1 }} }}
layer {{ name: "upscore" type: "Deconvolution" bottom: "score_fr" top: "upscore" param {{ lr_mult: 0 }}
        convolution_param {{ num_output: 3 kernel_size: 4 stride: 2 bias_term: false }} }}
layer {{ name: "score" type: "Crop" bottom: "upscore" bottom: "data" top: "score" crop_param {{ axis: 2 offset: 9 }} }}
{loss}
"""
LOSS = ('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" '
        'loss_param { ignore_label: 255 normalize: false } }')


def tiny(size, train):
    from netspec import io
    return io.read_net(TINY.format(size=size, loss=LOSS if train else "",
                                   label_top='top: "label"' if train else "",
                                   label_shape=f"shape {{ dim: 1 dim: 1 dim: {size} dim: {size} }}" if train else ""))


@pytest.fixture
def small_fcn(monkeypatch, tmp_path):
    """bench.cpu_fcn8s serving a small FCN-like net (conv, ReLU, MAX pool, dropout, deconvolution, crop, loss)."""
    if not cuda_sim.have_compiler():
        pytest.skip("needs a C++ compiler (g++) to run the kernels' source on the CPU")
    monkeypatch.setattr(cpu_fcn8s, "deploy_param", lambda size: tiny(size, False))
    monkeypatch.setattr(cpu_fcn8s, "train_param", lambda size: tiny(size, True))
    monkeypatch.setattr(cpu_fcn8s, "inputs", lambda size: (
        numpy.random.default_rng(0).normal(size=(1, 3, size, size)).astype(numpy.float32),
        numpy.random.default_rng(1).integers(0, 3, size=(1, 1, size, size)).astype(numpy.float32)))
    folder, out = tmp_path / "weights", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    cpu_fcn8s.write_weights(folder)
    cuda_sim.simulate(monkeypatch)
    return folder, out


def test_our_children_measure_on_the_gpu_path(small_fcn):
    folder, out = small_fcn
    results = {}
    for task in gpu_fcn8s.TASKS:
        result = gpu_fcn8s.child_ours(task, 32, 2, 0, folder, out)
        json.dumps(result)                                  # what the parent reads must be JSON
        assert len(result["times"]) == 2 and all(t > 0 for t in result["times"])
        assert result["card"] == "simulated GPU" and result["tf32"] == "unset"
        phases = {key.split("|")[1] for key in result["profile"]}
        assert phases == ({"forward"} if task == "forward" else {"forward", "backward"})
        results[task] = {"ours": result}
    assert numpy.load(out / "ours_forward_32.npy").shape == (1, 3, 32, 32)
    loss = results["train"]["ours"]["check"]["loss"]
    assert numpy.isfinite(loss) and loss > 0
    table = gpu_fcn8s.format_table(gpu_fcn8s.summarize(results, 32))
    assert "FCN-8s on simulated GPU" in table and "forward 32x32" in table and "train 32x32" in table


def test_the_table_compares_with_torch_and_the_paper():
    results = {"forward": {"ours": {"times": [0.2, 0.1, 0.3], "peak_mb": 2048, "card": "NVIDIA H100"},
                           "torch": {"times": [0.05, 0.05], "peak_mb": 1024}},
               "train": {"ours": {"times": [0.5], "peak_mb": 4096}, "torch": {"error": "CUDA out of memory"}}}
    summary = gpu_fcn8s.summarize(results, 500, {"scores": 2e-5, "training loss (dropout off)": 3e-3})
    forward, train = summary["rows"]
    assert forward["ours_ms"] == pytest.approx(200) and forward["torch_ms"] == pytest.approx(50)
    assert forward["ratio"] == pytest.approx(4) and forward["paper_ms"] == 175
    assert train["ratio"] is None and train["paper_ms"] is None and train["errors"] == {"torch": "CUDA out of memory"}
    table = gpu_fcn8s.format_table(summary)
    assert table.splitlines()[0] == "FCN-8s on NVIDIA H100"
    rows = {line[:18].strip(): line[18:].split() for line in table.splitlines()[2:4]}
    assert rows == {"forward 500x500": ["200.0", "50.0", "4.00", "175", "2048", "1024"],
                    "train 500x500": ["500.0", "-", "-", "-", "4096", "-"]}
    assert "torch failed: CUDA out of memory" in table
    assert "scores: relative difference 2.00e-05 (ok)" in table
    assert "training loss (dropout off): relative difference 3.00e-03 (MISMATCH)" in table


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.layers.test_golden" name="test_golden_case[relu-gpu]" time="0.1"/>
<testcase classname="tests.layers.test_golden" name="test_golden_case[conv-gpu]" time="0.1">
  <failure message="off">AssertionError</failure></testcase>
<testcase classname="tests.layers.test_gpu_parity" name="test_gpu_path_matches_the_cpu[pool-gpu]" time="0.1"/>
<testcase classname="tests.solver.test_gpu_solver" name="test_x[gpu]" time="0"><skipped message="no"/></testcase>
</testsuite></testsuites>"""


def test_the_check_summary_reads_tests_parity_and_benchmark(tmp_path):
    (tmp_path / "junit.xml").write_text(JUNIT)
    rows = [{"case": "conv3x3", "layer": "Convolution", "device": "gpu", "max_abs": 1e-6, "max_rel": 2e-6},
            {"case": "conv1x1", "layer": "Convolution", "device": "gpu", "max_abs": 3e-6, "max_rel": 1e-6},
            {"case": "relu", "layer": "ReLU", "device": "gpu", "max_abs": 0.0, "max_rel": 0.0},
            {"case": "relu", "layer": "ReLU", "device": "sim", "max_abs": 9.0, "max_rel": 9.0}]
    (tmp_path / "parity.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = gpu_fcn8s.summarize({"forward": {"ours": {"times": [0.1], "peak_mb": 10, "card": "NVIDIA H100"}}}, 500)
    (tmp_path / "bench.json").write_text(json.dumps(summary))
    text = gpu_report.report(tmp_path / "junit.xml", tmp_path / "parity.jsonl", tmp_path / "bench.json")
    assert "card: NVIDIA H100" in text
    assert "GPU tests (-m gpu): 2 passed, 1 failed, 1 skipped of 4" in text
    assert "FAILED tests.layers.test_golden::test_golden_case[conv-gpu]" in text
    assert "Convolution           3.00e-06    2.00e-06      2" in text
    assert "ReLU                  0.00e+00    0.00e+00      1" in text          # the sim row does not count
    assert "forward 500x500".ljust(18) + "100.0".rjust(10) + "-".rjust(10) in text
    missing = gpu_report.report(tmp_path / "none.xml", None, tmp_path / "none.json")
    assert "GPU tests: no results" in missing and "benchmark: no results" in missing and "card: unknown" in missing
