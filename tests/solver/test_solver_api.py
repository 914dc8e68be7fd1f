"""The pycaffe-like API: solver types by `type` and legacy `solver_type`, train/test nets (files or inline, TEST
phase, test_state), the test loop and its means, test_interval/test_initialization, average_loss smoothing, Caffe's
log lines, callbacks, path resolution, finetuning weights, and the NaN stop."""
import os
import re
import subprocess
import sys

import numpy
import pytest

from netspec import caffe_pb2, io as netio
from solver import (SOLVERS, AdaDeltaSolver, AdaGradSolver, AdamSolver, DivergedError, NesterovSolver, RMSPropSolver,
                    SGDSolver, get_solver)
from tests.solver.tiny import NET, make_data, make_tiny, solver_text

# -------------------------------------------------------------------- choosing the solver


@pytest.mark.parametrize("type_name, enum_name, cls", [
    ("SGD", "SGD", SGDSolver), ("Nesterov", "NESTEROV", NesterovSolver), ("AdaGrad", "ADAGRAD", AdaGradSolver),
    ("RMSProp", "RMSPROP", RMSPropSolver), ("AdaDelta", "ADADELTA", AdaDeltaSolver), ("Adam", "ADAM", AdamSolver),
])
def test_get_solver_builds_the_named_type(tmp_path, type_name, enum_name, cls):
    momentum = 0 if type_name in ("AdaGrad", "RMSProp") else 0.9
    path = make_tiny(tmp_path, type=f'"{type_name}"', momentum=momentum)
    solver = get_solver(path)
    assert type(solver) is cls and SOLVERS[type_name] is cls
    assert len(solver.history) == len(solver.net.learnable_params) * (2 if type_name in ("AdaDelta", "Adam") else 1)
    legacy = solver_text(type=None, solver_type=enum_name, momentum=momentum)      # the old enum field
    (tmp_path / "legacy.prototxt").write_text(legacy)
    assert type(get_solver(str(tmp_path / "legacy.prototxt"))) is cls


@pytest.mark.parametrize("overrides, message", [
    (dict(type='"AdaGrad"'), "momentum cannot be used with AdaGrad"),
    (dict(type='"RMSProp"'), "momentum cannot be used with RMSProp"),
    (dict(type='"RMSProp"', momentum=0, rms_decay=1.5), r"rms_decay must be in \[0, 1\)"),
    (dict(type='"Momentum"'), 'unknown solver type "Momentum"; Caffe\'s types are SGD, Nesterov'),
    (dict(lr_policy='"step"'), "needs stepsize > 0"),
    (dict(regularization_type='"L3"'), 'unknown regularization_type "L3"'),
    (dict(average_loss=0), "average_loss must be at least 1"),
    (dict(test_iter=None), r"test_iter must be given for each test net|test nets are defined"),
])
def test_bad_solvers_are_refused_naming_the_file(tmp_path, overrides, message):
    path = make_tiny(tmp_path, **overrides)
    if "test_iter" in overrides:           # a net file with no test_iter makes no test nets: that is fine
        assert get_solver(path).test_nets == []
        return
    with pytest.raises(ValueError, match=message) as info:
        get_solver(path)
    assert "solver.prototxt" in str(info.value)


def test_missing_files_are_named_with_where_they_were_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="solver file 'nope.prototxt' not found"):
        get_solver("nope.prototxt")
    (tmp_path / "sub").mkdir()
    path = make_tiny(tmp_path / "sub", net="")
    (tmp_path / "sub" / "net.prototxt").unlink()
    with pytest.raises(FileNotFoundError) as info:
        get_solver(path)
    text = str(info.value)
    assert "net 'net.prototxt' not found" in text
    assert str(tmp_path / "sub" / "net.prototxt") in text and str(tmp_path / "net.prototxt") in text


# -------------------------------------------------------------------- nets
def test_train_and_test_nets_and_their_phases(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "run").mkdir()
    path = make_tiny(tmp_path / "run")
    monkeypatch.chdir(elsewhere)                          # relative paths resolve against the solver's folder
    solver = get_solver(path)
    assert solver.net.phase == "TRAIN" and "acc" not in solver.net.layer_dict
    assert len(solver.test_nets) == 1 and solver.test_nets[0].phase == "TEST"
    assert "acc" in solver.test_nets[0].layer_dict
    assert list(solver.test_nets[0].outputs) == ["accuracy", "loss"]


def test_train_net_and_test_net_files_as_fcn_writes_them(tmp_path):
    make_tiny(tmp_path)
    path = tmp_path / "fcn_style.prototxt"                 # FCN's solver.prototxt: train_net + test_net
    path.write_text(solver_text(net=None, train_net='"net.prototxt"', test_net='"net.prototxt"', test_iter=1,
                                test_interval=999999999, test_initialization="false"))
    solver = get_solver(str(path))
    assert solver.net.phase == "TRAIN" and [n.phase for n in solver.test_nets] == ["TEST"]
    path.write_text(solver_text(train_net='"net.prototxt"'))
    with pytest.raises(ValueError, match="give exactly one of train_net_param, train_net, net_param or net "
                                         r"\(found train_net, net\)"):
        get_solver(str(path))


def test_test_means_the_outputs_over_test_iter(tmp_path):
    solver = get_solver(make_tiny(tmp_path))
    solver.step(3)
    scores = solver.test(0)
    w, b = solver.net.params["ip"][0].data, solver.net.params["ip"][1].data
    data, label = make_data(8, 1)                          # the test file: 2 iterations of batch 4
    scores_np = data.astype(numpy.float64) @ w.T + b
    prob = numpy.exp(scores_np - scores_np.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    losses = -numpy.log(prob[numpy.arange(8), label.astype(int)])
    hits = scores_np.argmax(1) == label
    assert scores["accuracy"] == pytest.approx(hits.reshape(2, 4).mean(1).mean())
    assert scores["loss"] == pytest.approx(losses.reshape(2, 4).mean(1).mean(), rel=1e-5)
    assert solver.test_nets[0].params["ip"][0].data is solver.net.params["ip"][0].data      # shared, not copied


@pytest.mark.parametrize("initialization, expected", [(True, [0, 5, 10]), (False, [5, 10])])
def test_test_interval_and_test_initialization(tmp_path, initialization, expected):
    solver = get_solver(make_tiny(tmp_path, test_initialization=str(initialization).lower(), snapshot_after_train=
                                  "false"))
    tested = []
    solver.add_callback(lambda s, net_id, scores: tested.append(s.iter), "test")
    solver.solve()                        # 10 iterations; Solve tests once more at max_iter
    assert tested == expected


def test_inline_nets_and_test_state(tmp_path, monkeypatch):
    make_tiny(tmp_path)
    net = netio.read_net(NET.replace('top: "accuracy" include { phase: TEST }',
                                     'top: "accuracy" include { phase: TEST stage: "val" }'))
    param = netio.read_solver(solver_text(net=None, test_iter=[2, 1]))
    param.train_net_param.CopyFrom(net)
    param.test_net_param.extend([net, net])
    param.test_state.add(stage=["val"])
    param.test_state.add()
    monkeypatch.chdir(tmp_path)                            # inline nets: paths as written
    solver = get_solver(param)
    assert solver.net.phase == "TRAIN" and "acc" not in solver.net.layer_dict
    assert "acc" in solver.test_nets[0].layer_dict                     # stage "val" includes it
    assert "acc" not in solver.test_nets[1].layer_dict
    assert list(solver.test(0)) == ["accuracy", "loss"] and list(solver.test(1)) == ["loss"]


def test_weights_are_copied_into_train_and_test_nets(tmp_path):
    solver = get_solver(make_tiny(tmp_path))
    solver.step(2)
    solver.net.save(str(tmp_path / "w.caffemodel"))
    fresh = get_solver(make_tiny(tmp_path, weights='"w.caffemodel"'))  # the solver's `weights` field
    for net in [fresh.net] + fresh.test_nets:
        assert numpy.array_equal(net.params["ip"][0].data, solver.net.params["ip"][0].data)
    with pytest.raises(FileNotFoundError, match="weights file 'missing.caffemodel' not found"):
        fresh.copy_weights("missing.caffemodel")


# -------------------------------------------------------------------- the loop
def test_average_loss_smooths_the_displayed_loss(tmp_path):
    solver = get_solver(make_tiny(tmp_path, average_loss=3, test_interval=1000))
    losses = []
    solver.add_callback(lambda s: losses.append(s.net.loss), "gradients_ready")
    solver.step(7)
    assert solver.smoothed_loss == pytest.approx(numpy.mean(losses[-3:]), rel=1e-6)
    solver.step(1)                        # each step() starts a fresh average, as Caffe's Step does
    assert solver.smoothed_loss == pytest.approx(losses[-1], rel=1e-6)


GLOG = r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ \w+\.py:\d+\] "
NUM = r"[-+\d.e]+"


def test_log_lines_are_caffes(tmp_path):
    # in a fresh interpreter: what the log looks like must not depend on what earlier tests did to logging
    path = make_tiny(tmp_path, display=2, snapshot=4)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    run = subprocess.run([sys.executable, "-c", f"from solver import get_solver; get_solver({str(path)!r}).solve()"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    solver = get_solver(path)
    lines = run.stderr.splitlines()
    # every line is glog's, but for the solver parameters Caffe prints (as glog does) on lines of their own
    continuation = [line for line in lines if not re.match(GLOG, line)]
    assert continuation == netio.to_text(solver.param).splitlines()
    lines = [line for line in lines if re.match(GLOG, line)]
    text = [re.sub(GLOG, "", line) for line in lines]
    assert text[text.index("Solving tiny") + 1] == "Learning Rate Policy: fixed"
    i = next(k for k, t in enumerate(text) if t.startswith("Iteration 2 ("))
    assert re.fullmatch(rf"Iteration 2 \({NUM} iter/s, {NUM}s/2 iters\), loss = {NUM}", text[i])
    assert re.fullmatch(rf"    Train net output #0: loss = ({NUM}) \(\* 1 = \1 loss\)", text[i + 1])
    assert text[i + 2] == "Iteration 2, lr = 0.1"
    j = text.index("Iteration 5, Testing net (#0)")
    assert re.fullmatch(rf"    Test net output #0: accuracy = {NUM}", text[j + 1])
    assert re.fullmatch(rf"    Test net output #1: loss = ({NUM}) \(\* 1 = \1 loss\)", text[j + 2])
    assert f"Snapshotting to binary proto file {tmp_path / 'snap' / 'tiny_iter_4.caffemodel'}" in text
    assert f"Snapshotting solver state to binary proto file {tmp_path / 'snap' / 'tiny_iter_4.solverstate'}" in text
    assert re.fullmatch(rf"Iteration 10, loss = {NUM}", text[-5])        # Solve's final display
    assert text[-1] == "Optimization Done."
    assert os.path.exists(tmp_path / "snap" / "tiny_iter_10.solverstate")   # snapshot_after_train


def test_callbacks_see_each_stage_of_an_iteration(tmp_path):
    solver = get_solver(make_tiny(tmp_path, test_interval=2))
    events = []
    solver.add_callback(lambda s: events.append(("start", s.iter)), "start")
    solver.add_callback(lambda s: events.append(("grads", s.iter, bool(s.net.params["ip"][0].diff.any()))),
                        "gradients_ready")
    solver.add_callback(lambda s: events.append(("step", s.iter)), "step")
    solver.add_callback(lambda s, i, scores: events.append(("test", s.iter, i, sorted(scores))), "test")
    solver.step(2)
    assert events == [("test", 0, 0, ["accuracy", "loss"]), ("start", 0), ("grads", 0, True), ("step", 1),
                      ("start", 1), ("grads", 1, True), ("step", 2)]
    with pytest.raises(ValueError, match="unknown callback event 'end'"):
        solver.add_callback(print, "end")


def test_snapshot_prefix_falls_back_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "out").mkdir()
    path = make_tiny(tmp_path / "models", snapshot_prefix='"out/run"', max_iter=2)
    monkeypatch.chdir(tmp_path)             # out/ exists here, not beside the solver: Caffe's cwd-relative prefix
    get_solver(path).solve()
    assert sorted(os.listdir(tmp_path / "out")) == ["run_iter_2.caffemodel", "run_iter_2.solverstate"]
    assert not (tmp_path / "models" / "out").exists()


def test_default_snapshot_prefix_is_the_solver_name(tmp_path):
    path = make_tiny(tmp_path, snapshot_prefix=None, max_iter=1)
    get_solver(path).solve()
    assert os.path.exists(tmp_path / "solver_iter_1.caffemodel")


# -------------------------------------------------------------------- divergence
def test_nan_loss_stops_without_saving_the_bad_weights(tmp_path, capsys):
    # row 8 of the training data is NaN: iteration 2 reads rows 8-11
    solver = get_solver(make_tiny(tmp_path, nan_row=8, snapshot=1, test_interval=1000))
    with pytest.raises(DivergedError) as info:
        solver.solve()
    message = str(info.value)
    assert message.startswith("Iteration 2: the loss is nan")
    assert "lr = 0.1" in message and "base_lr" in message and "normalize: false" in message
    assert str(tmp_path / "snap" / "tiny_iter_2.solverstate") in message
    assert sorted(os.listdir(tmp_path / "snap")) == ["tiny_iter_1.caffemodel", "tiny_iter_1.solverstate",
                                                      "tiny_iter_2.caffemodel", "tiny_iter_2.solverstate"]
    assert solver.iter == 2
    assert numpy.isfinite(solver.net.params["ip"][0].data).all()
    assert "Iteration 2: the loss is nan" in capsys.readouterr().err


def test_solver_parameter_message_works_without_a_file(tmp_path, monkeypatch):
    make_tiny(tmp_path)
    monkeypatch.chdir(tmp_path)
    param = netio.read_solver(solver_text(max_iter=2))
    solver = SGDSolver(param)
    solver.solve()
    assert solver.iter == 2 and os.path.exists(tmp_path / "snap" / "tiny_iter_2.caffemodel")
    assert isinstance(solver.param, caffe_pb2.SolverParameter)
