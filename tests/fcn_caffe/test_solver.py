"""The pycaffe solvers as pycaffe's test_solver.py uses them, and the rest of their surface: get_solver, the six
types, both callback forms, share_weights, restore, and relative paths taken from the working directory."""
import os

import numpy as np
import pytest

from tests.fcn_caffe.test_pycaffe import SIMPLE_NET, write

SOLVER = """net: '{net}'
test_iter: 10 test_interval: 10 base_lr: 0.01 momentum: {momentum}
weight_decay: 0.0005 lr_policy: 'inv' gamma: 0.0001 power: 0.75
display: 100 max_iter: 100 snapshot_after_train: false
snapshot_prefix: "{prefix}" {extra}
"""


def solver_text(net="net.prototxt", extra="", momentum=0.9, prefix="model"):
    return SOLVER.format(net=net, extra=extra, momentum=momentum, prefix=prefix)


def solver_file(folder, **fields):
    write(folder / "net.prototxt", SIMPLE_NET)
    return write(folder / "solver.prototxt", solver_text(**fields))


def fill_labels(solver):
    for net in [solver.net] + list(solver.test_nets):
        net.blobs["label"].data[...] = np.random.randint(13, size=net.blobs["label"].data.shape)


@pytest.fixture
def solver(caffe, tmp_path, monkeypatch):
    """pycaffe's setup: absolute net path in the solver file, snapshots relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    path = solver_file(tmp_path, net=str(tmp_path / "net.prototxt"))
    solver = caffe.SGDSolver(path)
    caffe.get_solver(path)                            # also make sure get_solver runs
    caffe.set_mode_cpu()
    fill_labels(solver)
    os.remove(path)
    return solver


def test_solve(solver):
    assert solver.iter == 0
    solver.solve()
    assert solver.iter == 100


def test_apply_update(solver):
    data = solver.net.layers[1].blobs[0].data[...]
    data[...] = 0
    solver.net.layers[1].blobs[0].diff[...] = 1
    solver.apply_update()                             # the initial learning rate is 0.01
    assert (data - -0.01 * np.ones(data.shape)).max() < 1e-7


def test_nets_outlive_their_solver(solver):
    nets = [solver.net] + list(solver.test_nets)
    assert len(nets) == 2
    del solver
    total = sum(p.data.sum() + p.diff.sum() for net in nets for ps in net.params.values() for p in ps)
    assert np.isfinite(total)


def test_snapshot_lands_in_the_working_directory(solver, tmp_path):
    solver.snapshot()
    for name in ["model_iter_0.caffemodel", "model_iter_0.solverstate"]:
        assert (tmp_path / name).is_file()


def test_solver_nets_are_pycaffe_nets(caffe, solver):
    assert isinstance(solver.net, caffe.Net) and isinstance(solver.test_nets[0], caffe.Net)
    assert list(solver.net.top_names) == ["data", "conv", "ip", "loss"]
    assert solver.param.base_lr == pytest.approx(0.01) and solver.param.max_iter == 100


@pytest.mark.parametrize("kind", ["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"])
def test_get_solver_builds_the_type_the_file_names(caffe, tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    momentum = 0 if kind in ("AdaGrad", "RMSProp") else 0.9        # Caffe refuses momentum for these two
    solver = caffe.get_solver(solver_file(tmp_path, extra=f'type: "{kind}"', momentum=momentum))
    assert type(solver) is getattr(caffe, f"{kind}Solver") and solver.type == kind
    fill_labels(solver)
    solver.step(2)
    assert solver.iter == 2


def test_callbacks_in_pycaffes_two_function_form(caffe, solver):
    calls = []
    solver.add_callback(lambda: calls.append(("start", solver.iter)),
                        lambda: calls.append(("gradients_ready", solver.iter)))
    solver.add_callback(lambda s: calls.append(("step", s.iter)))           # the engine's event form
    solver.add_callback(caffe.NCCL(solver, b"uid"))                         # pycaffe's NCCL form: no NCCL here
    solver.step(2)
    assert calls == [("start", 0), ("gradients_ready", 0), ("step", 1),
                     ("start", 1), ("gradients_ready", 1), ("step", 2)]


def test_share_weights_and_restore(caffe, solver, tmp_path):
    solver.step(3)
    model, state = solver.snapshot()
    other = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    solver.share_weights(other)
    assert other.params["ip"][0].data is solver.net.params["ip"][0].data
    fresh = caffe.SGDSolver(solver_file(tmp_path))
    fresh.restore(state)
    assert fresh.iter == 3
    np.testing.assert_array_equal(fresh.net.params["conv"][0].data, solver.net.params["conv"][0].data)


def test_relative_paths_resolve_from_the_working_directory(caffe, tmp_path, monkeypatch):
    """Caffe reads a relative net path and snapshot_prefix from the working directory, not the solver's folder."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.prototxt").write_text("this file beside the solver is not the net Caffe reads")
    write(tmp_path / "net.prototxt", SIMPLE_NET)
    solver_path = write(tmp_path / "models" / "solver.prototxt",
                        solver_text(prefix="snaps/run"))
    (tmp_path / "snaps").mkdir()
    monkeypatch.chdir(tmp_path)
    solver = caffe.SGDSolver(solver_path)
    fill_labels(solver)
    solver.snapshot()
    assert (tmp_path / "snaps" / "run_iter_0.caffemodel").is_file()
    assert not (tmp_path / "models" / "snaps").exists()


def test_nccl_for_several_solvers_without_nccl_or_mpiexec_says_what_it_needs(tmp_path, monkeypatch):
    import fcn_caffe as caffe
    from tests.solver.tiny import make_tiny
    monkeypatch.chdir(tmp_path)
    solver = caffe.SGDSolver(make_tiny(tmp_path))
    caffe.set_solver_count(2)
    try:
        with pytest.raises(RuntimeError, match=r"caffe.NCCL for 2 solvers needs NCCL .* or 2 processes started "
                                               r"by mpiexec -n 2"):
            caffe.NCCL(solver, caffe.NCCL.new_uid())
    finally:
        caffe.set_solver_count(1)
