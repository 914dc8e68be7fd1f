"""netspec.io and netspec.upgrade against real Caffe files (reference FCN nets, Caffe goldens,
legacy V1 fixtures) and small inline cases."""
import glob
import os

import h5py
import numpy as np
import pytest

from netspec import (
    CaffeFormatError, array_to_blob, blob_shape, blob_to_array, caffe_pb2 as pb, legacy_shape_equals,
    read_caffemodel, read_caffemodel_h5, read_net, read_solver, read_solverstate, read_weights, to_text,
    write_caffemodel, write_caffemodel_h5, write_solverstate, write_text,
)
from tests.conftest import SHARED

GOLDEN = SHARED / "caffe-golden"
MODELS = GOLDEN / "models"
V1_DIR = SHARED / "fixtures/caffemodel/v1_everpeace_caffe_2014"
V2_DIR = SHARED / "fixtures/caffemodel/v2_caffe_tensorflow"



def _files(*patterns):
    return sorted(p for pattern in patterns for p in glob.glob(str(SHARED / pattern)))


NET_AND_SOLVER_FILES = _files("reference/fcn-prototxt/*/*.prototxt", "caffe-golden/models/*.prototxt",
                              "fixtures/caffemodel/*/*.prototxt")


def _is_solver(path):
    return "solver" in os.path.basename(path)


def _layer(net, name):
    return next(layer for layer in net.layer if layer.name == name)


def _arrays(net):
    return {(layer.name, i): blob_to_array(b) for layer in net.layer for i, b in enumerate(layer.blobs)}


# ---- every real prototxt parses ---------------------------------------------------------------

@pytest.mark.parametrize("path", NET_AND_SOLVER_FILES, ids=lambda p: os.path.relpath(p, SHARED))
def test_real_prototxt_parses(path):
    if _is_solver(path):
        solver = read_solver(path)
        assert solver.base_lr > 0 and solver.type == "SGD"
        assert not solver.HasField("solver_type")
    else:
        net = read_net(path)
        assert len(net.layer) > 5 and not len(net.layers) and not len(net.input)
        assert all(layer.type for layer in net.layer)


def test_fcn_reference_nets_have_the_expected_shape():
    train = read_net(SHARED / "reference/fcn-prototxt/voc-fcn8s/train.prototxt")
    data = train.layer[0]
    assert (data.type, data.python_param.module, list(data.top)) == ("Python", "voc_layers", ["data", "label"])
    assert "'seed': 1337" in data.python_param.param_str
    conv1 = _layer(train, "conv1_1")
    assert list(conv1.convolution_param.pad) == [100]
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1, 1), (2, 0)]
    loss = _layer(train, "loss")
    assert loss.loss_param.ignore_label == 255 and loss.loss_param.HasField("normalize")
    assert not loss.loss_param.normalize
    deploy = read_net(SHARED / "reference/fcn-prototxt/voc-fcn8s/deploy.prototxt")
    assert deploy.layer[0].type == "Input"
    solver = read_solver(SHARED / "reference/fcn-prototxt/voc-fcn8s/solver.prototxt")
    assert solver.base_lr == pytest.approx(1e-14) and not solver.test_initialization


def test_golden_case_texts_parse():
    count = 0
    for path in sorted(GOLDEN.glob("*.h5")):
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
        read_net(attrs["prototxt"])
        for key in ("solver_prototxt", "solver_prototxt_hdf5"):
            if key in attrs:
                read_solver(attrs[key])
        count += 1
    assert count >= 80


# ---- legacy upgrades --------------------------------------------------------------------------

def test_v1_deploy_upgrades_to_the_v2_deploy():
    v1 = read_net(MODELS / "tiny_fcn_v1_deploy.prototxt")
    v2 = read_net(MODELS / "tiny_fcn_deploy.prototxt")
    assert v1.layer[0].name == "input" and v1.layer[0].type == "Input"  # Caffe's name for it
    assert v1.layer[0].input_param == v2.layer[0].input_param and list(v1.layer[0].top) == ["data"]
    assert len(v1.layer) == len(v2.layer)
    for old, new in zip(v1.layer[1:], v2.layer[1:]):
        assert (old.name, old.type, list(old.bottom), list(old.top)) == (new.name, new.type, list(new.bottom),
                                                                         list(new.top))
        assert [(p.lr_mult, p.decay_mult) for p in old.param] == [(p.lr_mult, p.decay_mult) for p in new.param]
        for name in ("convolution_param", "pooling_param", "inner_product_param", "dropout_param"):
            assert getattr(old, name) == getattr(new, name)
    assert [(p.lr_mult, p.decay_mult) for p in _layer(v1, "upscore").param] == [(0, 1)]


def test_v1_train_test_prototxt_upgrade():
    net = read_net(V1_DIR / "lenet_train_test.prototxt")
    types = [layer.type for layer in net.layer]
    assert types == ["Data", "Data", "Convolution", "Pooling", "Convolution", "Pooling", "InnerProduct",
                     "ReLU", "InnerProduct", "Accuracy", "SoftmaxWithLoss"]
    data = net.layer[0]
    assert data.transform_param.scale == pytest.approx(1 / 256)
    assert data.include[0].phase == pb.TRAIN and net.layer[1].include[0].phase == pb.TEST
    assert data.data_param.backend == pb.DataParameter.LMDB
    conv1 = _layer(net, "conv1")
    assert [p.lr_mult for p in conv1.param] == [1, 2]
    assert [p.HasField("decay_mult") for p in conv1.param] == [False, False]  # no weight_decay given


def test_v1_input_dim_becomes_input_layer():
    net = read_net(V1_DIR / "lenet.prototxt")
    first = net.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", ["data"])
    assert list(first.input_param.shape[0].dim) == [64, 1, 28, 28]
    assert not len(net.input) and not len(net.input_dim)


def test_v1_data_layer_transform_fields_move_to_transform_param():
    net = read_net('layers { name: "d" type: DATA top: "data" '
                   'data_param { source: "db" scale: 0.5 mean_file: "m" crop_size: 7 mirror: true batch_size: 3 } }')
    layer = net.layer[0]
    assert (layer.type, layer.data_param.source, layer.data_param.batch_size) == ("Data", "db", 3)
    t = layer.transform_param
    assert (t.scale, t.mean_file, t.crop_size, t.mirror) == (0.5, "m", 7, True)
    assert not any(layer.data_param.HasField(f) for f in ("scale", "mean_file", "crop_size", "mirror"))


def test_input_shape_becomes_input_layer_first():
    net = read_net('input: "a" input_shape { dim: 1 dim: 2 } input: "b" input_shape { dim: 3 }\n'
                   'layer { name: "s" type: "Silence" bottom: "a" bottom: "b" }')
    assert [layer.name for layer in net.layer] == ["input", "s"]
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[1, 2], [3]]
    with pytest.raises(CaffeFormatError, match="input_dim"):
        read_net('input: "a" input_dim: 1 input_dim: 2')


def test_v0_padding_layer_is_folded_into_the_conv():
    net = read_net("""
        name: "v0"
        input: "data"
        input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
        layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
        layers {
          layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 1 biasterm: false
                  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 weight_filler { type: "xavier" } }
          bottom: "pad1" top: "conv1"
        }
        layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
        layers { layer { name: "pad2" type: "padding" pad: 1 } bottom: "conv1" top: "pad2" }
        layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 } bottom: "pad2" top: "pool1" }
        layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.25 } bottom: "pool1" top: "pool1" }
    """)
    assert [(l.name, l.type) for l in net.layer] == [
        ("input", "Input"), ("conv1", "Convolution"), ("relu1", "ReLU"), ("pool1", "Pooling"), ("drop", "Dropout")]
    conv = net.layer[1]
    assert list(conv.bottom) == ["data"]
    p = conv.convolution_param
    assert (list(p.pad), list(p.kernel_size), list(p.stride), p.num_output, p.bias_term) == ([2], [3], [1], 4, False)
    assert p.weight_filler.type == "xavier"
    assert [(s.lr_mult, s.decay_mult) for s in conv.param] == [(1, 1), (2, 0)]
    pool = net.layer[3]
    assert list(pool.bottom) == ["conv1"]
    assert (pool.pooling_param.pad, pool.pooling_param.pool) == (1, pb.PoolingParameter.AVE)
    assert net.layer[4].dropout_param.dropout_ratio == 0.25
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 8, 8]


def test_v0_padding_layer_feeding_a_non_conv_is_an_error():
    with pytest.raises(CaffeFormatError, match="padding layer 'pad'"):
        read_net('layers { layer { name: "pad" type: "padding" pad: 1 } bottom: "x" top: "p" }\n'
                 'layers { layer { name: "r" type: "relu" } bottom: "p" top: "p" }\ninput: "x"')


def test_solver_type_enum_upgrade():
    assert read_solver('base_lr: 0.1\nsolver_type: ADAM').type == "Adam"
    assert read_solver("solver_type: NESTEROV").type == "Nesterov"
    assert not read_solver("solver_type: SGD").HasField("solver_type")
    with pytest.raises(CaffeFormatError, match="solver_type"):
        read_solver('solver_type: ADAM\ntype: "Adam"')


def test_batch_norm_with_three_param_specs_is_frozen():
    net = read_net('layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" param { lr_mult: 1 } '
                   'param { lr_mult: 1 } param { lr_mult: 1 } }')
    assert [(p.lr_mult, p.decay_mult) for p in net.layer[0].param] == [(0, 0)] * 3


# ---- text: sources and errors -----------------------------------------------------------------

def test_read_net_accepts_path_pathlike_text_and_message():
    path = MODELS / "tiny_fcn_deploy.prototxt"
    by_path, by_str = read_net(path), read_net(str(path))
    assert by_path == by_str == read_net(path.read_text())
    legacy = pb.NetParameter(input=["data"], input_dim=[1, 2, 3, 4])
    upgraded = read_net(legacy)
    assert upgraded.layer[0].type == "Input" and list(legacy.input) == ["data"]  # argument untouched
    assert read_net('name: "one line"').name == "one line"


def test_missing_file_names_it():
    with pytest.raises(FileNotFoundError, match="no_such_net.prototxt"):
        read_net("no_such_net.prototxt")
    with pytest.raises(FileNotFoundError, match="models/deploy"):
        read_net("models/deploy")
    with pytest.raises(FileNotFoundError, match="nothing.caffemodel"):
        read_caffemodel("nothing.caffemodel")


def test_syntax_error_reports_file_line_and_column(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  type: "ReLU"\n  bottom "x"\n}\n')
    with pytest.raises(CaffeFormatError) as err:
        read_net(path)
    assert str(err.value).startswith(f"{path}:5:")
    assert (err.value.source, err.value.line) == (str(path), 5)


def test_unknown_field_is_named(tmp_path):
    path = tmp_path / "typo.prototxt"
    path.write_text('layer {\n  name: "c"\n  convolution_param {\n    num_ouput: 3\n  }\n}\n')
    with pytest.raises(CaffeFormatError, match="num_ouput") as err:
        read_net(path)
    assert (err.value.field, err.value.line, err.value.column) == ("num_ouput", 4, 5)
    assert str(err.value).startswith(f"{path}:4:5:")
    with pytest.raises(CaffeFormatError, match="MAXIMUM") as err:
        read_net("layer { pooling_param { pool: MAXIMUM } }")
    assert str(err.value).startswith("<text>:1:")


def test_missing_required_field():
    with pytest.raises(CaffeFormatError, match="clip_param.max"):
        read_net('layer { name: "c" type: "Clip" clip_param { min: 0 } }')


def test_binary_file_given_as_text():
    with pytest.raises(CaffeFormatError, match="read_caffemodel"):
        read_net(MODELS / "tiny_fcn.caffemodel")


def test_text_round_trip(tmp_path):
    net = read_net(SHARED / "reference/fcn-prototxt/voc-fcn8s-atonce/train.prototxt")
    write_text(net, tmp_path / "net.prototxt")
    assert read_net(tmp_path / "net.prototxt") == net
    assert read_net(to_text(net)) == net
    assert os.listdir(tmp_path) == ["net.prototxt"]  # no temporary file left behind


# ---- binary caffemodel ------------------------------------------------------------------------

def test_caffemodel_round_trip_is_byte_exact(tmp_path):
    src = MODELS / "tiny_fcn.caffemodel"
    net = read_caffemodel(src)
    assert [layer.type for layer in net.layer][:5] == ["Input", "Convolution", "ReLU", "Pooling", "Split"]
    assert blob_to_array(_layer(net, "fc").blobs[0]).shape == (7, 520)
    write_caffemodel(net, tmp_path / "copy.caffemodel")
    assert (tmp_path / "copy.caffemodel").read_bytes() == src.read_bytes()
    write_caffemodel(pb.NetParameter(layer=[pb.LayerParameter(name="x")]), tmp_path / "copy.caffemodel")
    assert [layer.name for layer in read_caffemodel(tmp_path / "copy.caffemodel").layer] == ["x"]  # replaced
    assert sorted(os.listdir(tmp_path)) == ["copy.caffemodel"]


@pytest.mark.parametrize("name", ["m.caffemodel", "m.caffemodel.h5", "s.solverstate", "s.solverstate.h5"])
def test_an_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch, name):
    """A kill after the new bytes are written but before the rename (here: the fsync raising
    KeyboardInterrupt) leaves the old snapshot whole and no temporary file behind."""
    import netspec.io as netio
    path = tmp_path / name
    old_net = pb.NetParameter(layer=[pb.LayerParameter(name="old", blobs=[array_to_blob(np.ones(3, np.float32))])])
    new_net = pb.NetParameter(layer=[pb.LayerParameter(name="new", blobs=[array_to_blob(np.zeros(3, np.float32))])])
    old_state, new_state = (pb.SolverState(iter=i, learned_net=n, current_step=0) for i, n in ((1, "a"), (2, "b")))
    if "caffemodel" in name:
        write, read, old, new = (write_caffemodel_h5 if name.endswith(".h5") else write_caffemodel), \
            (read_caffemodel_h5 if name.endswith(".h5") else read_caffemodel), old_net, new_net
    else:
        write, read, old, new = write_solverstate, read_solverstate, old_state, new_state
    write(old, path)
    before = path.read_bytes()

    def killed(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(netio, "_fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        write(new, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == [name]
    assert read(path) == old


def test_v1_caffemodel_upgrades_and_matches_the_v2_weights():
    v1 = read_caffemodel(MODELS / "tiny_fcn_v1.caffemodel")
    v2 = read_caffemodel(MODELS / "tiny_fcn.caffemodel")
    assert not len(v1.layers)
    assert [layer.type for layer in v1.layer] == ["Convolution", "ReLU", "Pooling", "Convolution", "ReLU",
                                                  "Convolution", "Deconvolution", "Softmax", "InnerProduct",
                                                  "ReLU", "Dropout"]
    assert [(p.lr_mult, p.decay_mult) for p in _layer(v1, "conv1").param] == [(1, 1), (2, 0)]
    fc_weight, fc_bias = _layer(v1, "fc").blobs
    assert blob_shape(fc_weight) == (1, 1, 7, 520) and blob_shape(fc_bias) == (1, 1, 1, 7)
    for layer in v2.layer:
        for old, new in zip(_layer(v1, layer.name).blobs if layer.blobs else [], layer.blobs):
            want = blob_to_array(new)
            np.testing.assert_array_equal(blob_to_array(old, shape=want.shape), want)


@pytest.mark.parametrize("name", ["lenet_iter_10000.caffemodel", "cifar10_quick_iter_5000.caffemodel"])
def test_legacy_everpeace_caffemodels(name):
    net = read_caffemodel(V1_DIR / name)
    assert net.layer[0].type == "Data" and "InnerProduct" in [layer.type for layer in net.layer]
    conv1 = _layer(net, "conv1")
    assert [p.lr_mult for p in conv1.param] == [1, 2]
    weight = conv1.blobs[0]
    assert weight.HasField("num") and not weight.HasField("shape")
    assert blob_to_array(weight).ndim == 4


def test_v2_lenet_caffemodel():
    net = read_caffemodel(V2_DIR / "lenet_iter_10000.caffemodel")
    ip1 = blob_to_array(_layer(net, "ip1").blobs[0])
    assert ip1.shape == (500, 800) and ip1.dtype == np.float32


def test_truncated_caffemodel(tmp_path):
    raw = (MODELS / "tiny_fcn.caffemodel").read_bytes()
    for cut in (len(raw) - 1, len(raw) // 2, 7):
        path = tmp_path / f"cut{cut}.caffemodel"
        path.write_bytes(raw[:cut])
        with pytest.raises(CaffeFormatError, match="truncated") as err:
            read_caffemodel(path)
        assert str(path) in str(err.value) and err.value.__cause__ is None


def test_non_protobuf_caffemodels(tmp_path):
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(CaffeFormatError, match="empty"):
        read_caffemodel(empty)
    with pytest.raises(CaffeFormatError, match="HDF5"):
        read_caffemodel(MODELS / "tiny_fcn.caffemodel.h5")
    with pytest.raises(CaffeFormatError, match="text"):
        read_caffemodel(MODELS / "tiny_fcn_deploy.prototxt")
    noise = tmp_path / "noise.caffemodel"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(CaffeFormatError, match="noise.caffemodel"):
        read_caffemodel(noise)


# ---- HDF5 weights -----------------------------------------------------------------------------

def test_caffe_h5_weights_match_the_binary_model():
    h5 = read_caffemodel_h5(MODELS / "tiny_fcn.caffemodel.h5")
    model = read_caffemodel(MODELS / "tiny_fcn.caffemodel")
    # Both hold every layer of the net Caffe ran, Split included; HDF5 keeps them in name order.
    assert [layer.name for layer in h5.layer] == sorted(layer.name for layer in model.layer)
    binary = _arrays(model)
    arrays = _arrays(h5)
    assert arrays.keys() == binary.keys()
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, binary[key])
    assert read_weights(MODELS / "tiny_fcn.caffemodel.h5") == h5
    assert read_weights(MODELS / "tiny_fcn.caffemodel") == read_caffemodel(MODELS / "tiny_fcn.caffemodel")


def _h5_layout(path):
    layout = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                layout[name] = (obj.shape, obj.dtype.str, obj.chunks, obj.compression)
            else:
                layout[name] = "group"
        f.visititems(visit)
    return layout


def test_h5_write_reproduces_caffe_layout(tmp_path):
    net = read_caffemodel(MODELS / "tiny_fcn.caffemodel")
    out = tmp_path / "tiny.caffemodel.h5"
    write_caffemodel_h5(net, out)
    assert _h5_layout(out) == _h5_layout(MODELS / "tiny_fcn.caffemodel.h5")
    back = read_caffemodel_h5(out)
    assert _arrays(back).keys() == _arrays(net).keys()
    for key, value in _arrays(back).items():
        np.testing.assert_array_equal(value, _arrays(net)[key])
    assert os.listdir(tmp_path) == ["tiny.caffemodel.h5"]


def test_h5_write_with_diff_and_double(tmp_path):
    values = np.arange(6, dtype=np.float64).reshape(2, 3)
    layer = pb.LayerParameter(name="p", blobs=[array_to_blob(values, diff=-values),
                                               array_to_blob(np.ones(4, np.float32))])
    write_caffemodel_h5(pb.NetParameter(layer=[layer]), tmp_path / "w.h5", write_diff=True)
    back = read_weights(tmp_path / "w.h5").layer[0]
    np.testing.assert_array_equal(blob_to_array(back.blobs[0]), values)
    assert blob_to_array(back.blobs[0]).dtype == np.float64
    np.testing.assert_array_equal(blob_to_array(back.blobs[0], diff=True), -values)
    np.testing.assert_array_equal(blob_to_array(back.blobs[1], diff=True), np.zeros(4))
    with pytest.raises(ValueError, match="a/b"):
        write_caffemodel_h5(pb.NetParameter(layer=[pb.LayerParameter(name="a/b")]), tmp_path / "x.h5")


def test_h5_reader_rejects_other_files(tmp_path):
    with pytest.raises(CaffeFormatError, match="not an HDF5 file"):
        read_caffemodel_h5(MODELS / "tiny_fcn.caffemodel")
    with pytest.raises(CaffeFormatError, match="'data' group"):
        read_caffemodel_h5(GOLDEN / "relu_slope0.h5")
    cut = tmp_path / "cut.caffemodel.h5"
    cut.write_bytes((MODELS / "tiny_fcn.caffemodel.h5").read_bytes()[:-100])
    with pytest.raises(CaffeFormatError, match="truncated") as err:
        read_weights(cut)
    assert str(cut) in str(err.value)


# ---- solver state -----------------------------------------------------------------------------

def test_cifar10_solverstate():
    state = read_solverstate(V1_DIR / "cifar10_quick_iter_5000.solverstate")
    assert state.iter == 5000 and len(state.history) == 10
    assert state.learned_net.endswith("cifar10_quick_lr1_iter_5000.caffemodel")
    net = read_caffemodel(V1_DIR / "cifar10_quick_iter_5000.caffemodel")
    params = [b for layer in net.layer for b in layer.blobs]
    assert [blob_shape(h) for h in state.history] == [blob_shape(p) for p in params]


def test_solverstate_round_trips(tmp_path):
    src = V1_DIR / "cifar10_quick_iter_5000.solverstate"
    state = read_solverstate(src)
    write_solverstate(state, tmp_path / "s.solverstate")
    assert (tmp_path / "s.solverstate").read_bytes() == src.read_bytes()
    state.current_step = 3
    write_solverstate(state, tmp_path / "s.solverstate.h5")
    back = read_solverstate(tmp_path / "s.solverstate.h5")
    assert (back.iter, back.learned_net, back.current_step) == (5000, state.learned_net, 3)
    for a, b in zip(back.history, state.history):
        np.testing.assert_array_equal(blob_to_array(a), blob_to_array(b).reshape(blob_shape(a)))


def test_caffe_snapshot_pair(tmp_path):
    with h5py.File(GOLDEN / "solver_sgd_momentum.h5", "r") as f:
        snap = f["snapshot"]
        raw = {k: snap[k][()].tobytes() for k in ("solverstate", "solverstate_h5", "caffemodel", "caffemodel_h5")}
        history = [snap[f"history/{i}"][()] for i in range(len(snap["history"]))]
    for key, data in raw.items():
        (tmp_path / key).write_bytes(data)
    binary, hdf5 = read_solverstate(tmp_path / "solverstate"), read_solverstate(tmp_path / "solverstate_h5")
    assert (binary.iter, hdf5.iter) == (5, 5)
    assert hdf5.learned_net == "snapshot/train_iter_5.caffemodel.h5"
    for i, want in enumerate(history):
        np.testing.assert_array_equal(blob_to_array(hdf5.history[i]), want)
        np.testing.assert_array_equal(blob_to_array(binary.history[i]), want)
    write_solverstate(hdf5, tmp_path / "again.solverstate.h5")
    assert _h5_layout(tmp_path / "again.solverstate.h5") == _h5_layout(tmp_path / "solverstate_h5")
    binary_keys = _arrays(read_weights(tmp_path / "caffemodel")).keys()
    assert binary_keys == _arrays(read_weights(tmp_path / "caffemodel_h5")).keys()


# ---- blobs ------------------------------------------------------------------------------------

def test_blob_legacy_shapes():
    bias = array_to_blob(np.arange(4, dtype=np.float32), legacy=True)
    assert (bias.num, bias.channels, bias.height, bias.width) == (1, 1, 1, 4) and not bias.HasField("shape")
    assert blob_shape(bias) == (1, 1, 1, 4)
    assert legacy_shape_equals(bias, (4,)) and legacy_shape_equals(bias, (1, 4))
    assert legacy_shape_equals(pb.BlobProto(num=1, channels=1, height=1, width=1), ())  # a legacy scalar
    assert not legacy_shape_equals(bias, (4, 1)) and not legacy_shape_equals(bias, (1, 1, 1, 1, 4))
    weight = pb.BlobProto(num=1, channels=1, height=7, width=520)
    assert legacy_shape_equals(weight, (7, 520)) and not legacy_shape_equals(weight, (7, 52, 10))
    assert blob_to_array(bias, shape=(4,)).shape == (4,)
    with pytest.raises(ValueError, match="does not match"):
        blob_to_array(bias, shape=(2, 2))
    modern = array_to_blob(np.zeros((2, 3), np.float32))
    assert legacy_shape_equals(modern, (2, 3)) and not legacy_shape_equals(modern, (1, 2, 3))
    assert legacy_shape_equals(modern.shape, [2, 3]) and legacy_shape_equals([5], (5,))
    # A legacy field wins over `shape`, as in Blob::FromProto.
    mixed = pb.BlobProto(num=2, channels=1, height=1, width=3, shape=pb.BlobShape(dim=[6]), data=[0] * 6)
    assert blob_to_array(mixed).shape == (2, 1, 1, 3)


def test_blob_dtypes_and_counts():
    doubles = array_to_blob(np.linspace(0, 1, 6).reshape(2, 3))
    assert len(doubles.double_data) == 6 and not len(doubles.data)
    assert blob_to_array(doubles).dtype == np.float64
    floats = array_to_blob(np.arange(6, dtype=np.int32).reshape(3, 2), diff=np.ones((3, 2), np.float32))
    assert blob_to_array(floats).dtype == np.float32 and list(floats.diff) == [1.0] * 6
    np.testing.assert_array_equal(blob_to_array(floats), np.arange(6).reshape(3, 2))
    scalar = array_to_blob(np.float32(2.5))
    assert blob_to_array(scalar).shape == () and blob_to_array(scalar) == 2.5
    with pytest.raises(CaffeFormatError, match="holds 3 values"):
        blob_to_array(pb.BlobProto(shape=pb.BlobShape(dim=[2, 2]), data=[1, 2, 3]))
    with pytest.raises(ValueError, match="at most 4 axes"):
        array_to_blob(np.zeros((1, 1, 1, 1, 1)), legacy=True)


def test_v0_data_layer_fields_and_unknown_parameters():
    text = ('layers { layer { name: "d" type: "data" source: "db" batchsize: 8 cropsize: 5 meanfile: "m" '
            'mirror: true scale: 0.5 } top: "data" top: "label" }\n'
            'layers { layer { name: "ip" type: "innerproduct" num_output: 3 kernelsize: 3 } bottom: "data" top: "ip" }')
    with pytest.warns(UserWarning, match="unknown parameter kernelsize for layer type innerproduct"):
        net = read_net(text)
    data, ip = net.layer
    assert (data.type, data.data_param.source, data.data_param.batch_size) == ("Data", "db", 8)
    t = data.transform_param
    assert (t.crop_size, t.mean_file, t.mirror, t.scale) == (5, "m", True, 0.5)
    assert (ip.type, ip.inner_product_param.num_output) == ("InnerProduct", 3)
