"""Snapshots: ours decode to what Caffe wrote, Caffe's restore into ours and continue, a stopped and resumed run
ends where an uninterrupted one does (binary and HDF5), and a restore works from any working directory."""
import io
import os

import h5py
import numpy
import pytest

from netspec import caffe_pb2, io as netio
from solver import SGDSolver, get_solver
from tests.conftest import FIXTURES
from tests.solver.golden_solver import SolverCase, close

CASE = "solver_sgd_momentum"
HDF5_SOLVER_KEYS = ["current_step", "history", "iter", "learned_net"]


@pytest.fixture(scope="module")
def case():
    return SolverCase(CASE)


def params_of(net):
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def assert_same_params(a, b, exact=True):
    assert a.keys() == b.keys()
    for name in a:
        for i, (x, y) in enumerate(zip(a[name], b[name])):
            ok = numpy.array_equal(x, y) if exact else close(x, y)
            assert ok, f"param {name}/{i} differs (max {numpy.abs(x - y).max():.3g})"


def write_caffe_snapshot(case, folder):
    """Put Caffe's own snapshot files where its solverstates say they are (relative to the solver folder)."""
    os.makedirs(os.path.join(folder, "snapshot"), exist_ok=True)
    for key, name in zip(("caffemodel", "solverstate", "caffemodel_h5", "solverstate_h5"), case.snapshot["files"]):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(case.snapshot[key])


def uninterrupted(case, folder, steps, solver_text=None):
    solver = get_solver(case.write(folder, solver_text))
    case.set_params(solver.net)
    solver.step(steps)
    return solver


# -------------------------------------------------------------------- our files are Caffe's files
@pytest.mark.parametrize("fmt", ["binary", "hdf5"])
def test_our_snapshot_decodes_like_caffes(case, tmp_path, fmt):
    text = case.snapshot["solver_prototxt_hdf5"] if fmt == "hdf5" else None
    solver = uninterrupted(case, tmp_path, case.num_steps, text)
    model, state = solver.snapshot()
    ext = ".h5" if fmt == "hdf5" else ""
    assert model == str(tmp_path / "snapshot" / f"train_iter_5.caffemodel{ext}")
    assert state == str(tmp_path / "snapshot" / f"train_iter_5.solverstate{ext}")
    assert not [n for n in os.listdir(tmp_path / "snapshot") if n.endswith(".tmp")]   # atomic writes left no temp
    if fmt == "binary":
        theirs_model = caffe_pb2.NetParameter.FromString(case.snapshot["caffemodel"])
        theirs_state = caffe_pb2.SolverState.FromString(case.snapshot["solverstate"])
        ours_model = netio.read_caffemodel(model)
    else:
        (tmp_path / "caffe").mkdir()
        for key in ("caffemodel_h5", "solverstate_h5"):
            (tmp_path / "caffe" / key).write_bytes(case.snapshot[key])
        # HDF5 weights keep no layer types and list layers by name, ours and Caffe's alike
        theirs_model = netio.read_caffemodel_h5(str(tmp_path / "caffe" / "caffemodel_h5"))
        theirs_state = netio.read_solverstate(str(tmp_path / "caffe" / "solverstate_h5"))
        ours_model = netio.read_caffemodel_h5(model)
        with h5py.File(model, "r") as ours, h5py.File(io.BytesIO(case.snapshot["caffemodel_h5"]), "r") as caffe:
            assert _layout(ours) == _layout(caffe)
        with h5py.File(state, "r") as ours, h5py.File(io.BytesIO(case.snapshot["solverstate_h5"]), "r") as caffe:
            assert sorted(ours) == HDF5_SOLVER_KEYS and _layout(ours) == _layout(caffe)
    assert [(l.name, l.type) for l in ours_model.layer] == [(l.name, l.type) for l in theirs_model.layer]
    if fmt == "binary":          # each layer's parameters as Caffe's Net::ToProto writes them (phase, loss_weight)
        for ours_layer, caffe_layer in zip(ours_model.layer, theirs_model.layer):
            ours_param, caffe_param = caffe_pb2.LayerParameter(), caffe_pb2.LayerParameter()
            ours_param.CopyFrom(ours_layer)
            caffe_param.CopyFrom(caffe_layer)
            del ours_param.blobs[:], caffe_param.blobs[:]
            assert ours_param == caffe_param, f"{netio.to_text(ours_param)}\n!=\n{netio.to_text(caffe_param)}"
    for ours_layer, caffe_layer in zip(ours_model.layer, theirs_model.layer):
        assert len(ours_layer.blobs) == len(caffe_layer.blobs)
        for a, b in zip(ours_layer.blobs, caffe_layer.blobs):
            assert netio.blob_shape(a) == netio.blob_shape(b)
            assert close(netio.blob_to_array(a), netio.blob_to_array(b)), ours_layer.name
    ours_state = netio.read_solverstate(state)
    assert (ours_state.iter, ours_state.current_step, ours_state.learned_net) == \
        (theirs_state.iter, theirs_state.current_step, theirs_state.learned_net)
    assert len(ours_state.history) == len(theirs_state.history) == len(case.snapshot["history"])
    for a, expected in zip(ours_state.history, case.snapshot["history"]):
        assert close(netio.blob_to_array(a), expected)


def _layout(f):
    """Every object's name, kind, dtype and shape (and string padding): the HDF5 layout, not the bytes."""
    out = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            pad = obj.id.get_type().get_strpad() if obj.dtype.kind == "S" else None
            out.append((name, "dataset", obj.dtype.str if obj.dtype.kind != "S" else "S", obj.shape, pad))
        else:
            out.append((name, "group"))
    f.visititems(visit)
    return sorted(out)


# -------------------------------------------------------------------- Caffe's files restore into ours
@pytest.mark.parametrize("state_name", ["snapshot/train_iter_5.solverstate", "snapshot/train_iter_5.solverstate.h5"])
def test_caffes_snapshot_restores_and_continues(case, tmp_path, monkeypatch, state_name):
    folder = tmp_path / "run"
    folder.mkdir()
    solver_path = case.write(folder)
    write_caffe_snapshot(case, folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)                       # learned_net is relative: found beside the solverstate
    solver = get_solver(solver_path)
    solver.restore(folder / state_name)
    assert solver.iter == 5 and solver.current_step == 0
    assert_same_params(params_of(solver.net), case.steps[-1]["params"])           # exactly Caffe's weights
    for ours, caffe in zip(solver.history, case.snapshot["history"]):
        assert numpy.array_equal(ours, caffe)
    solver.step(2)
    reference = uninterrupted(case, tmp_path, 7)
    assert_same_params(params_of(solver.net), params_of(reference.net), exact=False)


def test_restore_then_continue_follows_caffes_trajectory(case, tmp_path):
    """Snapshot at iteration 2, restore in a fresh solver, step 3 more: Caffe's steps 3-5 (the data resumes at
    the batch an uninterrupted run reads, rows 4-5, not at row 0)."""
    solver = uninterrupted(case, tmp_path, 2)
    _, state = solver.snapshot()
    resumed = get_solver(str(tmp_path / "solver.prototxt"))
    resumed.restore(state)
    for k in range(2, case.num_steps):
        resumed.step(1)
        assert_same_params(params_of(resumed.net), case.steps[k]["params"], exact=False)


# -------------------------------------------------------------------- stopped + resumed == uninterrupted
@pytest.mark.parametrize("fmt", ["binary", "hdf5"])
@pytest.mark.parametrize("data", ["in order", "shuffled, two files"])
def test_resume_equals_uninterrupted(case, tmp_path, fmt, data):
    solver_text = case.snapshot["solver_prototxt_hdf5"] if fmt == "hdf5" else case.solver_prototxt
    net_text = case.net_prototxt

    def prepare(folder):
        folder.mkdir()
        path = case.write(folder, solver_text)
        if data != "in order":
            # 4 + 2 rows in two files, shuffled: fast-forwarding must replay the shuffles and file switches
            with h5py.File(folder / "a.h5", "w") as f:
                for k, v in case.data.items():
                    f.create_dataset(k, data=v[:4])
            with h5py.File(folder / "b.h5", "w") as f:
                for k, v in case.data.items():
                    f.create_dataset(k, data=v[4:])
            (folder / "train_h5.txt").write_text("a.h5\nb.h5\n")
            (folder / "train.prototxt").write_text(net_text.replace("shuffle: false", "shuffle: true"))
        return path

    straight = get_solver(prepare(tmp_path / "straight"))
    case.set_params(straight.net)
    straight.step(9)

    first = get_solver(prepare(tmp_path / "stopped"))
    case.set_params(first.net)
    first.step(4)
    _, state = first.snapshot()
    del first
    resumed = get_solver(str(tmp_path / "stopped" / "solver.prototxt"))
    resumed.restore(state)
    resumed.step(5)
    assert resumed.iter == straight.iter == 9
    assert_same_params(params_of(resumed.net), params_of(straight.net), exact=True)
    for a, b in zip(resumed.history, straight.history):
        assert numpy.array_equal(a, b)


# -------------------------------------------------------------------- more restore cases
def test_restore_caffes_2014_cifar10_solverstate(tmp_path):
    """A real solverstate from 2014 Caffe (V1 weights, legacy 4-D history shapes such as 1x1x1x32 for a bias)."""
    fx = FIXTURES / "caffemodel" / "v1_everpeace_caffe_2014"
    net = netio.read_net(str(fx / "cifar10_quick_train_test.prototxt"))
    keep = [l for l in net.layer if l.type not in ("Data", "Accuracy")]
    del net.layer[:]
    data = net.layer.add(name="cifar", type="HDF5Data", top=["data", "label"])
    data.hdf5_data_param.source = "list.txt"
    data.hdf5_data_param.batch_size = 2
    net.layer.extend(keep)
    rng = numpy.random.default_rng(0)
    with h5py.File(tmp_path / "batch.h5", "w") as f:
        f["data"] = rng.normal(size=(2, 3, 32, 32)).astype(numpy.float32) * 50
        f["label"] = numpy.array([3, 7], dtype=numpy.float32)
    (tmp_path / "list.txt").write_text("batch.h5\n")
    param = netio.read_solver(str(fx / "cifar10_quick_solver_lr1.prototxt"))
    param.ClearField("net")
    param.ClearField("test_iter")
    param.net_param.CopyFrom(net)
    param.test_interval = 0
    param.display = 0
    (tmp_path / "solver.prototxt").write_text(netio.to_text(param))
    solver = SGDSolver(str(tmp_path / "solver.prototxt"))
    # learned_net says examples/cifar10/cifar10_quick_lr1_iter_5000.caffemodel: not there, so the model with the
    # solverstate's own name beside it is used
    solver.restore(fx / "cifar10_quick_iter_5000.solverstate")
    assert solver.iter == 5000
    weights = netio.read_caffemodel(str(fx / "cifar10_quick_iter_5000.caffemodel"))
    by_name = {l.name: l for l in weights.layer}
    for name, blobs in solver.net.params.items():
        for blob, proto in zip(blobs, by_name[name].blobs):
            assert numpy.array_equal(blob.data, netio.blob_to_array(proto).reshape(blob.shape))
    state = netio.read_solverstate(str(fx / "cifar10_quick_iter_5000.solverstate"))
    for h, blob, proto in zip(solver.history, solver.net.learnable_params, state.history):
        assert h.shape == blob.shape and numpy.array_equal(h.ravel(), netio.blob_to_array(proto).ravel())
    # one more step is SGD with momentum 0.9 from the restored history: h' = 0.9 h + lr (g + 0.004 w), w' = w - h'
    before = [b.data.copy() for b in solver.net.learnable_params]
    history = [h.copy() for h in solver.history]
    grads = []
    solver.add_callback(lambda s: grads.extend(b.diff.copy() for b in s.net.learnable_params), "gradients_ready")
    solver.step(1)
    for w, h, g, lr, blob in zip(before, history, grads, solver.net.params_lr, solver.net.learnable_params):
        expected_h = 0.9 * h.astype(numpy.float64) + 1e-4 * lr * (g + 0.004 * w.astype(numpy.float64))
        assert numpy.allclose(blob.data, w - expected_h, rtol=1e-5, atol=1e-7)


def test_restore_refuses_a_state_for_another_solver_type(case, tmp_path):
    solver = uninterrupted(case, tmp_path, 1)
    _, state = solver.snapshot()
    text = case.solver_prototxt.replace('type: "SGD"', 'type: "Adam"').replace("momentum: 0.99", "momentum: 0.9")
    (tmp_path / "adam.prototxt").write_text(text)
    adam = get_solver(str(tmp_path / "adam.prototxt"))
    with pytest.raises(ValueError, match=r"holds 7 history blob\(s\), but this Adam solver keeps 14"):
        adam.restore(state)


def test_restore_names_missing_files(case, tmp_path):
    solver = uninterrupted(case, tmp_path, 1)
    with pytest.raises(FileNotFoundError, match="nothing.solverstate"):
        solver.restore(tmp_path / "nothing.solverstate")
    model, state = solver.snapshot()
    os.remove(model)
    with pytest.raises(FileNotFoundError, match=r"train_iter_1.caffemodel' \(learned_net\) were not found"):
        solver.restore(state)


def test_snapshot_creates_the_prefix_folder_and_keeps_older_snapshots(case, tmp_path):
    text = case.solver_prototxt.replace('snapshot_prefix: "snapshot/train"',
                                        'snapshot_prefix: "deep/er/run"\nsnapshot: 2')
    solver = get_solver(case.write(tmp_path, text))
    solver.step(4)
    names = sorted(os.listdir(tmp_path / "deep" / "er"))
    assert names == ["run_iter_2.caffemodel", "run_iter_2.solverstate", "run_iter_4.caffemodel",
                     "run_iter_4.solverstate"]
    assert netio.read_solverstate(str(tmp_path / "deep/er/run_iter_2.solverstate")).learned_net == \
        "deep/er/run_iter_2.caffemodel"


def test_restore_into_a_solver_that_already_ran(case, tmp_path):
    """The data position is counted, so restoring into a used solver skips only what is still missing."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = uninterrupted(case, tmp_path / "a", 8)
    first = uninterrupted(case, tmp_path / "b", 5)
    _, state = first.snapshot()
    used = get_solver(str(tmp_path / "b" / "solver.prototxt"))
    used.step(2)                                    # 2 batches read; the snapshot is at 5
    used.restore(state)
    used.step(3)
    assert_same_params(params_of(used.net), params_of(straight.net), exact=True)


def resume_with_voc_data(folder, form="native", between="", label="label"):
    """A net on VOC-layout data in random order (VOCSegData, `form` native or python), with the layers `between`
    the data and the loss (whose label is `label`): trained 7 iterations straight, and 4 + snapshot + restore + 3.
    Returns (straight solver, resumed solver, the snapshot's solverstate)."""
    from tests.data.test_voc_layers import MEAN, make_voc, tiny_samples
    samples = tiny_samples(4, numpy.random.default_rng(1))
    root = make_voc(folder / "VOC", [s[0] for s in samples], split="train", extra=samples)
    params = f"{{'voc_dir': '{root}', 'split': 'train', 'mean': {MEAN}, 'seed': 11}}"
    data = (f'type: "VOCSegData" python_param {{ param_str: "{params}" }}' if form == "native" else
            f'type: "Python" python_param {{ module: "voc_layers" layer: "VOCSegDataLayer" param_str: "{params}" }}')
    (folder / "train.prototxt").write_text(
        f'layer {{ name: "data" {data} top: "data" top: "label" }}\n' + between +
        'layer { name: "score" type: "Convolution" bottom: "data" top: "score" convolution_param { num_output: 5 '
        'kernel_size: 1 weight_filler { type: "gaussian" std: 0.01 } } }\n'
        f'layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "{label}" top: "loss" '
        'loss_param { ignore_label: 255 } }\n')
    (folder / "solver.prototxt").write_text(
        'train_net: "train.prototxt"\nbase_lr: 0.001\nlr_policy: "fixed"\nmomentum: 0.9\nmax_iter: 9\n'
        'display: 0\nrandom_seed: 5\nsnapshot_prefix: "snap"\n')
    straight = get_solver(str(folder / "solver.prototxt"))
    straight.step(7)
    stopped = get_solver(str(folder / "solver.prototxt"))
    stopped.step(4)
    _, state = stopped.snapshot()
    resumed = get_solver(str(folder / "solver.prototxt"))
    resumed.restore(state)
    resumed.step(3)
    return straight, resumed, state


@pytest.mark.parametrize("form", ["native", "python"])
def test_resume_with_fcns_dataset_layer_equals_uninterrupted(tmp_path, form):
    """VOCSegData in random order (the train split): restoring fast-forwards it, natively or as a Python layer."""
    straight, resumed, _ = resume_with_voc_data(tmp_path, form)
    assert_same_params(params_of(resumed.net), params_of(straight.net), exact=True)
