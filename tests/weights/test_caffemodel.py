"""weights.caffemodel: format detection, Caffe's legacy-shape rules, and lossless conversion between binary
.caffemodel and HDF5, on the real files in tests/vectors (fixtures from public repos, Caffe-made goldens)."""
import h5py
import numpy as np
import pytest

from netspec import caffe_pb2 as pb
from netspec import io
from netspec.errors import CaffeFormatError
from tests.conftest import FIXTURES, GOLDEN
from weights import caffemodel as cm

V1_DIR = FIXTURES / "caffemodel" / "v1_everpeace_caffe_2014"
V2_DIR = FIXTURES / "caffemodel" / "v2_caffe_tensorflow"
MODELS = GOLDEN / "models"
LENET_V1 = V1_DIR / "lenet_iter_10000.caffemodel"
LENET_V2 = V2_DIR / "lenet_iter_10000.caffemodel"
CIFAR_V1 = V1_DIR / "cifar10_quick_iter_5000.caffemodel"
CIFAR_STATE = V1_DIR / "cifar10_quick_iter_5000.solverstate"
REAL_BINARIES = [LENET_V1, LENET_V2, CIFAR_V1, MODELS / "tiny_fcn.caffemodel", MODELS / "tiny_fcn_v1.caffemodel"]


def arrays_of(weights):
    return {name: arrays for name, arrays in weights.arrays().items()}


def assert_same_arrays(a, b):
    """Same layers with params, and per blob the same shape, dtype and bits."""
    assert list(a) == list(b) or sorted(a) == sorted(b)
    for name in a:
        assert len(a[name]) == len(b[name]), name
        for i, (x, y) in enumerate(zip(a[name], b[name])):
            assert x.shape == y.shape, f"{name}[{i}]: {x.shape} vs {y.shape}"
            assert x.dtype == y.dtype, f"{name}[{i}]: {x.dtype} vs {y.dtype}"
            assert x.tobytes() == y.tobytes(), f"{name}[{i}]: values differ"


# ---- formats ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path, fmt", [
    (LENET_V1, cm.V1_BINARY), (CIFAR_V1, cm.V1_BINARY), (MODELS / "tiny_fcn_v1.caffemodel", cm.V1_BINARY),
    (LENET_V2, cm.V2_BINARY), (MODELS / "tiny_fcn.caffemodel", cm.V2_BINARY),
    (MODELS / "tiny_fcn.caffemodel.h5", cm.HDF5)], ids=lambda v: getattr(v, "name", v))
def test_detect_format_of_real_files(path, fmt):
    assert cm.detect_format(path) == fmt
    assert cm.load(path).format == fmt


def test_detect_v0_binary(tmp_path):
    net = pb.NetParameter(name="v0")
    conn = net.layers.add(bottom=["data"], top=["conv"])
    conn.layer.name, conn.layer.type, conn.layer.num_output, conn.layer.kernelsize = "conv", "conv", 2, 1
    conn.layer.blobs.add().CopyFrom(io.array_to_blob(np.ones((2, 3, 1, 1), np.float32), legacy=True))
    conn.layer.blobs.add().CopyFrom(io.array_to_blob(np.arange(2, dtype=np.float32), legacy=True))
    net.input.append("data")
    net.input_dim.extend([1, 3, 4, 4])
    path = tmp_path / "v0.caffemodel"
    path.write_bytes(net.SerializeToString())
    weights = cm.load(path)
    assert weights.format == cm.V0_BINARY
    conv = next(layer for layer in weights.param.layer if layer.name == "conv")
    assert conv.type == "Convolution"
    assert [io.blob_shape(b) for b in conv.blobs] == [(2, 3, 1, 1), (2,)]


def test_binary_layout_walk_skips_leading_fields(tmp_path):
    # name, input and input_dim come before the layers on the wire; the walk must step over them
    net = pb.NetParameter(name="x" * 300, input=["data"], input_dim=[1, 1, 2, 2])
    net.layer.add(name="ip", type="InnerProduct").blobs.add().CopyFrom(io.array_to_blob(np.zeros((2, 4), np.float32)))
    path = tmp_path / "v2.caffemodel"
    path.write_bytes(net.SerializeToString())
    assert cm.detect_format(path) == cm.V2_BINARY


# ---- legacy shapes ----------------------------------------------------------------------------

def legacy(*shape):
    return io.array_to_blob(np.zeros(shape, np.float32), legacy=True)


@pytest.mark.parametrize("layer_type, index, stored, expected", [
    ("InnerProduct", 0, (1, 1, 7, 520), (7, 520)),
    ("InnerProduct", 1, (1, 1, 1, 7), (7,)),
    ("InnerProduct", 0, (2, 1, 7, 5), None),          # not a padded 2-D weight: Caffe would not load it as MxK
    ("Convolution", 0, (4, 3, 3, 3), (4, 3, 3, 3)),
    ("Convolution", 1, (1, 1, 1, 4), (4,)),
    ("Deconvolution", 0, (5, 5, 4, 4), (5, 5, 4, 4)),
    ("Deconvolution", 1, (1, 1, 1, 5), (5,)),
    ("Scale", 0, (1, 1, 1, 8), None),                  # unknown to the rules: the stored shape stays
    ("", 1, (1, 1, 1, 8), None),
])
def test_caffe_shape_rules(layer_type, index, stored, expected):
    blob = legacy(*stored)
    assert cm.caffe_shape(layer_type, index, blob) == expected
    if expected is not None:   # whatever we normalize to, Caffe's ShapeEquals accepts the stored blob for it
        assert io.legacy_shape_equals(blob, expected)


def test_normalize_shapes_rewrites_by_type_and_keeps_unknown():
    net = pb.NetParameter()
    ip = net.layer.add(name="ip", type="InnerProduct")
    ip.blobs.extend([legacy(1, 1, 3, 4), legacy(1, 1, 1, 3)])
    other = net.layer.add(name="mystery", type="PReLU")
    other.blobs.extend([legacy(1, 1, 1, 3)])
    reshaped, kept = cm.normalize_shapes(net)
    assert reshaped == [("ip", 0, (1, 1, 3, 4), (3, 4)), ("ip", 1, (1, 1, 1, 3), (3,))]
    assert kept == [("mystery", 0, (1, 1, 1, 3), "PReLU")]
    assert not any(cm.is_legacy(b) for b in ip.blobs)
    assert [tuple(b.shape.dim) for b in ip.blobs] == [(3, 4), (3,)]
    assert cm.is_legacy(other.blobs[0])


def test_v1_caffemodel_loads_in_caffe_shapes():
    weights = cm.load(LENET_V1)
    shapes = {name: [a.shape for a in arrays] for name, arrays in weights.arrays().items()}
    assert shapes == {"conv1": [(20, 1, 5, 5), (20,)], "conv2": [(50, 20, 5, 5), (50,)],
                      "ip1": [(500, 800), (500,)], "ip2": [(10, 500), (10,)]}
    # V2 LeNet (another training run, so other values) stores the same shapes natively
    assert {n: [a.shape for a in arrs] for n, arrs in cm.load(LENET_V2).arrays().items()} == shapes


# ---- conversion -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", REAL_BINARIES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_binary_h5_binary_round_trip_is_bit_exact(path, tmp_path):
    original = cm.load(path)
    h5 = tmp_path / "w.caffemodel.h5"
    back = tmp_path / "w.caffemodel"
    cm.convert(path, h5)
    cm.convert(h5, back)
    assert cm.detect_format(h5) == cm.HDF5 and cm.detect_format(back) == cm.V2_BINARY
    assert_same_arrays(arrays_of(original), arrays_of(cm.load(h5)))
    assert_same_arrays(arrays_of(original), arrays_of(cm.load(back)))
    # and against the raw file: the values are the stored bits, only legacy shapes were normalized
    raw = io.read_caffemodel(path)
    for layer in raw.layer:
        for i, blob in enumerate(layer.blobs):
            stored = io.blob_to_array(blob)
            assert stored.tobytes() == original.arrays()[layer.name][i].tobytes()


def test_binary_output_is_v2_layers_with_shapes(tmp_path):
    out = tmp_path / "lenet.caffemodel"
    cm.convert(LENET_V1, out)
    net = pb.NetParameter()
    net.ParseFromString(out.read_bytes())
    assert len(net.layers) == 0 and len(net.layer) == 9
    assert [(l.name, l.type) for l in net.layer if len(l.blobs)] == [
        ("conv1", "Convolution"), ("conv2", "Convolution"), ("ip1", "InnerProduct"), ("ip2", "InnerProduct")]
    for layer in net.layer:
        for blob in layer.blobs:
            assert not cm.is_legacy(blob) and len(blob.shape.dim) and len(blob.data) == np.prod(blob.shape.dim)


def test_h5_output_is_caffes_layout(tmp_path):
    """Converting Caffe's own binary gives exactly what Caffe's net.save_hdf5 wrote for the same net."""
    out = tmp_path / "tiny.caffemodel.h5"
    cm.convert(MODELS / "tiny_fcn.caffemodel", out)

    def layout(path):
        items = {}
        with h5py.File(path, "r") as f:
            assert list(f.keys()) == ["data"] and not dict(f.attrs)

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    items[name] = (obj.shape, obj.dtype, obj.chunks, obj.compression, dict(obj.attrs),
                                   obj[()].tobytes())
                else:
                    items[name] = ("group", dict(obj.attrs))
            f.visititems(visit)
        return items

    assert layout(out) == layout(MODELS / "tiny_fcn.caffemodel.h5")


def test_v1_to_h5_holds_the_goldens_params(tmp_path):
    out = tmp_path / "tiny_v1.caffemodel.h5"
    cm.convert(MODELS / "tiny_fcn_v1.caffemodel", out)
    with h5py.File(out, "r") as mine, h5py.File(MODELS / "tiny_fcn_v1_golden.h5", "r") as golden:
        for layer in golden["params"]:
            for i in golden["params"][layer]:
                expected = golden["params"][layer][i][()]
                got = mine["data"][layer][i][()]
                assert got.shape == expected.shape and got.dtype == np.float32
                assert got.tobytes() == expected.tobytes(), f"{layer}/{i}"


def test_h5_to_binary_with_net_gives_types_and_order(tmp_path):
    out = tmp_path / "tiny.caffemodel"
    weights = cm.convert(MODELS / "tiny_fcn.caffemodel.h5", out, net=MODELS / "tiny_fcn_deploy.prototxt")
    assert weights.not_in_net == ["pool1_pool1_0_split"]         # Caffe's inserted Split: not in the prototxt
    net = io.read_caffemodel(out)
    caffe_saved = io.read_caffemodel(MODELS / "tiny_fcn.caffemodel")
    expected = [(l.name, l.type) for l in caffe_saved.layer if l.type != "Split"]
    assert [(l.name, l.type) for l in net.layer][:len(expected)] == expected
    theirs_by_name = {l.name: l for l in caffe_saved.layer}
    for mine in net.layer:
        assert len(mine.blobs) == len(theirs_by_name[mine.name].blobs)
        for a, b in zip(mine.blobs, theirs_by_name[mine.name].blobs):
            assert tuple(a.shape.dim) == tuple(b.shape.dim) and a.data == b.data


def test_double_data_round_trips_and_casts(tmp_path):
    rng = np.random.default_rng(0)
    net = pb.NetParameter(name="doubles")
    conv = net.layer.add(name="conv", type="Convolution")
    w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)     # float64
    conv.blobs.add().CopyFrom(io.array_to_blob(w))
    conv.blobs.add().CopyFrom(io.array_to_blob(b.reshape(1, 1, 1, 3), legacy=True))
    src = tmp_path / "d.caffemodel"
    io.write_caffemodel(net, src)
    cm.convert(src, tmp_path / "d.caffemodel.h5")
    cm.convert(tmp_path / "d.caffemodel.h5", tmp_path / "back.caffemodel")
    with h5py.File(tmp_path / "d.caffemodel.h5", "r") as f:
        assert f["data/conv/0"].dtype == np.float64 and f["data/conv/1"].shape == (3,)
    back = cm.load(tmp_path / "back.caffemodel").arrays()["conv"]
    assert back[0].dtype == np.float64 and back[0].tobytes() == w.tobytes()
    assert back[1].shape == (3,) and back[1].tobytes() == b.tobytes()
    cm.convert(src, tmp_path / "f.caffemodel", float32=True)
    cast = cm.load(tmp_path / "f.caffemodel").arrays()["conv"]
    assert cast[0].dtype == np.float32 and np.array_equal(cast[0], w.astype(np.float32))


def test_diffs_survive_conversion(tmp_path):
    net = pb.NetParameter()
    layer = net.layer.add(name="ip", type="InnerProduct")
    layer.blobs.add().CopyFrom(io.array_to_blob(np.ones((2, 3), np.float32), diff=np.full((2, 3), 0.5, np.float32)))
    io.write_caffemodel(net, tmp_path / "a.caffemodel")
    cm.convert(tmp_path / "a.caffemodel", tmp_path / "a.caffemodel.h5")
    blob = cm.load(tmp_path / "a.caffemodel.h5").param.layer[0].blobs[0]
    assert np.array_equal(io.blob_to_array(blob, diff=True), np.full((2, 3), 0.5, np.float32))


# ---- solver state -----------------------------------------------------------------------------

def test_v1_solverstate_round_trip(tmp_path):
    state, changes = cm.load_solverstate(CIFAR_STATE, weights=CIFAR_V1)
    assert state.iter == 5000 and len(state.history) == 10
    assert (6, (1, 1, 64, 1024), (64, 1024)) in changes
    params = [a for arrays in cm.load(CIFAR_V1).arrays().values() for a in arrays]
    assert [io.blob_shape(b) for b in state.history] == [a.shape for a in params]
    h5 = tmp_path / "c.solverstate.h5"
    cm.save_solverstate(state, h5)
    cm.save_solverstate(io.read_solverstate(h5), tmp_path / "c.solverstate")
    raw = io.read_solverstate(CIFAR_STATE)
    for path in (h5, tmp_path / "c.solverstate"):
        again = io.read_solverstate(path)
        assert (again.iter, again.learned_net, again.current_step) == (raw.iter, raw.learned_net, raw.current_step)
        for a, b, p in zip(again.history, raw.history, params):
            assert io.blob_to_array(a).shape == p.shape
            assert io.blob_to_array(a).tobytes() == io.blob_to_array(b).tobytes()


def test_solverstate_with_wrong_weights_is_refused():
    with pytest.raises(ValueError, match="history blobs but .* holds 8 params"):
        cm.load_solverstate(CIFAR_STATE, weights=LENET_V1)


# ---- damaged files ----------------------------------------------------------------------------

@pytest.mark.parametrize("source", [MODELS / "tiny_fcn.caffemodel", MODELS / "tiny_fcn.caffemodel.h5", LENET_V1],
                         ids=lambda p: p.name)
def test_truncated_file_is_a_caffe_format_error(source, tmp_path):
    data = source.read_bytes()
    path = tmp_path / source.name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaffeFormatError, match=str(path.name)):
        cm.load(path)


def test_text_file_is_a_caffe_format_error(tmp_path):
    path = tmp_path / "deploy.caffemodel"
    path.write_bytes((MODELS / "tiny_fcn_deploy.prototxt").read_bytes())
    with pytest.raises(CaffeFormatError, match="text"):
        cm.load(path)
