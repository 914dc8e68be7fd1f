"""A small ResNet-style net (convolutions without bias, BatchNorm + Scale, a residual block) trains under
`python -m solver` on a learnable problem, its BatchNorm statistics move only by the layer's moving average, and a
run stopped and resumed from its snapshot ends bit for bit where the uninterrupted run ends."""
import re
import shutil

import h5py
import numpy
import pytest

from netspec import NetSpec, io as netio, layers as L, params as P, to_text
from tests.solver.test_cli import run

CLASSES, SIZE, ROWS, BATCH = 3, 8, 48, 8
MAX_ITER, SNAPSHOT = 40, 20
MAF = 0.999                                           # BatchNorm's default moving_average_fraction


def conv_bn(n, bottom, name, **bn_kwargs):
    """conv<name> (3x3, 8 outputs, no bias) with BatchNorm bn<name> and Scale scale<name> in place."""
    n[f"conv{name}"] = L.Convolution(bottom, num_output=8, kernel_size=3, pad=1, bias_term=False,
                                     weight_filler=dict(type="msra"))
    n[f"bn{name}"] = L.BatchNorm(n[f"conv{name}"], in_place=True, **bn_kwargs)
    n[f"scale{name}"] = L.Scale(n[f"bn{name}"], bias_term=True, in_place=True)
    return n[f"scale{name}"]


def tiny_resnet():
    n = NetSpec()
    n.data, n.label = L.HDF5Data(ntop=2, source="train.txt", batch_size=BATCH)
    # the first BatchNorm writes its three lr_mult 0 specs as Caffe's ResNet nets do; the others leave them out
    n.relu1 = L.ReLU(conv_bn(n, n.data, "1", param=[dict(lr_mult=0)] * 3), in_place=True)
    n.relu2a = L.ReLU(conv_bn(n, n.relu1, "2a"), in_place=True)
    n.res2 = L.Eltwise(n.relu1, conv_bn(n, n.relu2a, "2b"))
    n.relu2 = L.ReLU(n.res2, in_place=True)
    n.pool = L.Pooling(n.relu2, pool=P.Pooling.AVE, global_pooling=True)
    n.fc = L.InnerProduct(n.pool, num_output=CLASSES, weight_filler=dict(type="gaussian", std=0.1))
    n.loss = L.SoftmaxWithLoss(n.fc, n.label)
    return to_text(n.to_proto())


SOLVER = f"""net: "net.prototxt"
type: "SGD"
base_lr: 0.1
momentum: 0.9
weight_decay: 0.0001
lr_policy: "fixed"
display: 1
average_loss: 1
max_iter: {MAX_ITER}
snapshot: {SNAPSHOT}
snapshot_prefix: "snap/res"
random_seed: 7
"""


def make_problem(folder):
    """Images whose class is the channel holding a bright 3x3 patch (anywhere), in noise."""
    rng = numpy.random.default_rng(0)
    label = numpy.arange(ROWS) % CLASSES
    data = rng.normal(0, 1, (ROWS, CLASSES, SIZE, SIZE)).astype(numpy.float32)
    for row, k in enumerate(label):
        y, x = rng.integers(0, SIZE - 2, 2)
        data[row, k, y:y + 3, x:x + 3] += 3
    with h5py.File(folder / "train.h5", "w") as f:
        f["data"], f["label"] = data, label.astype(numpy.float32)
    (folder / "train.txt").write_text("train.h5\n")
    (folder / "net.prototxt").write_text(tiny_resnet())
    (folder / "solver.prototxt").write_text(SOLVER)


def losses(log):
    return [float(v) for v in re.findall(r"\] Iteration \d+ \([^)]*\), loss = (\S+)", log)]


def layers_of(path):
    layers = netio.read_caffemodel(str(path)).layer
    return {layer.name: [netio.blob_to_array(b) for b in layer.blobs] for layer in layers if len(layer.blobs)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("straight")
    make_problem(folder)
    done = run(["solver.prototxt"], folder, timeout=300)
    assert done.returncode == 0, done.stderr
    return folder, done.stderr


def test_the_loss_goes_down(trained):
    _, log = trained
    loss = losses(log)
    assert len(loss) == MAX_ITER
    assert loss[0] == pytest.approx(numpy.log(CLASSES), abs=0.3)       # chance at the start
    assert max(loss[-5:]) < 0.1 * loss[0], loss                       # under a tenth of it after 40


def test_batch_norm_statistics_move_only_by_their_moving_average(trained):
    folder, _ = trained
    start = layers_of(folder / "snap" / f"res_iter_{SNAPSHOT}.caffemodel")
    end = layers_of(folder / "snap" / f"res_iter_{MAX_ITER}.caffemodel")
    factor = numpy.float32(0)
    for _ in range(MAX_ITER):                        # f <- maf * f + 1 once per TRAIN forward, in float32
        factor = factor * numpy.float32(MAF) + numpy.float32(1)
    for name in ("bn1", "bn2a", "bn2b"):
        mean, var, f = end[name]
        assert mean.shape == var.shape == (8,) and f.shape == (1,)
        assert f[0] == factor, name
        assert numpy.all(var > 0) and not numpy.array_equal(mean, start[name][0]), name
    for name in ("scale1", "scale2a", "scale2b", "conv1", "fc"):   # the learned params did learn
        assert not numpy.array_equal(end[name][0], start[name][0]), name


def test_resume_from_the_snapshot_equals_the_uninterrupted_run(trained, tmp_path):
    straight, _ = trained
    make_problem(tmp_path)
    state = straight / "snap" / f"res_iter_{SNAPSHOT}.solverstate"
    shutil.copytree(straight / "snap", tmp_path / "earlier")
    done = run(["solver.prototxt", "--snapshot", f"earlier/{state.name}"], tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"] Iteration {SNAPSHOT - 1} (" not in done.stderr and f"] Iteration {MAX_ITER - 1} (" in done.stderr
    ours, theirs = (layers_of(f / "snap" / f"res_iter_{MAX_ITER}.caffemodel") for f in (tmp_path, straight))
    assert ours.keys() == theirs.keys() and {"bn1", "bn2a", "bn2b"} <= ours.keys()
    for name in ours:
        for i, (a, b) in enumerate(zip(ours[name], theirs[name])):
            assert numpy.array_equal(a, b), f"{name}[{i}] differs by {numpy.abs(a - b).max():.3g}"
    states = [netio.read_solverstate(str(f / "snap" / f"res_iter_{MAX_ITER}.solverstate"))
              for f in (tmp_path, straight)]
    assert states[0].iter == states[1].iter == MAX_ITER
    for a, b in zip(states[0].history, states[1].history):
        assert numpy.array_equal(netio.blob_to_array(a), netio.blob_to_array(b))
    assert len(states[0].history) == len(states[1].history) > 0
