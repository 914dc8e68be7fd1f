"""The Net as Caffe's Net::Init builds it: phase/stage/level rules, definition order, in-place layers, loss_weight
on any top, propagate_down and force_backward (no gradient where none is needed), params shared by ParamSpec name,
copy_from / save, and errors that name the layer and the blob. Values are derived by hand from the tiny nets."""

import numpy
import pytest

from layers import Net
from netspec import caffe_pb2, read_net

rng = numpy.random.default_rng(0)


def net_text(*layers, shape=(2, 3), force_backward=False):
    dims = " ".join(f"dim: {d}" for d in shape)
    head = "force_backward: true\n" if force_backward else ""
    return (head + f'layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}\n'
            + "\n".join(layers))


def ip(name, bottom, n=4, extra="", params="", top=None):
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top or name}" {params} '
            f'inner_product_param {{ num_output: {n} weight_filler {{ type: "gaussian" }} '
            f'bias_filler {{ type: "gaussian" }} }} {extra} }}')


# ---- building ---------------------------------------------------------------------------------------------

def test_net_accepts_a_path_text_and_a_message(tmp_path):
    text = net_text(ip("fc", "x"))
    (tmp_path / "n.prototxt").write_text(text)
    for source in (str(tmp_path / "n.prototxt"), tmp_path / "n.prototxt", text, read_net(text)):
        net = Net(source)
        assert [l.name for l in net.layers] == ["in", "fc"] and net.params["fc"][0].shape == (4, 3)
    assert Net(tmp_path / "n.prototxt").base_dir == str(tmp_path)       # data sources resolve beside the file
    with pytest.raises(ValueError, match="phase must be 'TRAIN' or 'TEST', got 'VAL'"):
        Net(text, phase="VAL")


def test_unknown_layer_type_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"layer 'c': unknown layer type 'Convolutoin' \(known types: .*"
                                         r"Convolution, .*SoftmaxWithLoss"):
        Net(net_text('layer { name: "c" type: "Convolutoin" bottom: "x" top: "c" }'))


def test_include_exclude_by_phase_stage_and_level():
    text = net_text(
        ip("always", "x"),
        ip("train_only", "x", extra="include { phase: TRAIN }"),
        ip("test_only", "x", extra="include { phase: TEST }"),
        ip("not_deploy", "x", extra='exclude { stage: "deploy" }'),
        ip("level2", "x", extra="include { min_level: 2 }"))
    def names(**kw):
        return [l.name for l in Net(text, **kw).layers if l.type == "InnerProduct"]
    assert names() == ["always", "test_only", "not_deploy"]                # TEST is the default phase
    assert names(phase="TRAIN") == ["always", "train_only", "not_deploy"]
    assert names(stages=["deploy"]) == ["always", "test_only"]
    assert names(level=2) == ["always", "test_only", "not_deploy", "level2"]


def test_definition_order_in_place_layers_and_outputs():
    net = Net(net_text(ip("fc1", "x"), 'layer { name: "relu" type: "ReLU" bottom: "fc1" top: "fc1" }',
                       ip("fc2", "fc1", n=2), ip("side", "x", n=5)))
    assert [l.name for l in net.layers] == ["in", "x_in_0_split", "fc1", "relu", "fc2", "side"]
    assert list(net.blobs) == ["x", "x_in_0_split_0", "x_in_0_split_1", "fc1", "fc2", "side"]
    assert list(net.params) == ["fc1", "fc2", "side"]                     # layers with params, in order
    assert net.inputs == ["x"] and net.outputs == ["fc2", "side"]
    relu = net.layer_dict["relu"]
    assert net.bottom_names[3] == net.top_names[3] == ["fc1"] and relu.name == "relu"
    x = rng.normal(size=(2, 3)).astype(numpy.float32)
    out = net.forward(x=x)
    assert list(out) == ["fc2", "side"]
    w1, b1 = (b.data for b in net.params["fc1"])
    w2, b2 = (b.data for b in net.params["fc2"])
    hidden = numpy.maximum(x @ w1.T + b1, 0)
    numpy.testing.assert_allclose(net.blobs["fc1"].data, hidden, rtol=1e-5)   # the blob holds the ReLU output
    numpy.testing.assert_allclose(out["fc2"], hidden @ w2.T + b2, rtol=1e-5, atol=1e-6)
    # forward(**inputs) reshapes the whole net to a new batch
    assert net.forward(x=numpy.ones((5, 3), numpy.float32))["side"].shape == (5, 5)


# ---- losses and which gradients are computed --------------------------------------------------------------

def test_loss_weight_on_any_top():
    net = Net(net_text('layer { name: "relu" type: "ReLU" bottom: "x" top: "r" loss_weight: 0.5 }',
                       force_backward=True))
    x = rng.normal(size=(2, 3)).astype(numpy.float32)
    net.forward(x=x)
    assert net.loss == pytest.approx(0.5 * numpy.maximum(x, 0).sum(), rel=1e-6)
    diffs = net.backward()
    numpy.testing.assert_array_equal(net.blobs["r"].diff, numpy.full((2, 3), 0.5, numpy.float32))
    numpy.testing.assert_array_equal(diffs["x"], 0.5 * (x > 0))


def test_gradients_only_where_a_loss_needs_them():
    net = Net(net_text(ip("fc", "x", top="fc"), ip("branch", "x", n=2),
                       'layer { name: "loss" type: "Power" bottom: "fc" top: "loss" loss_weight: 1 }',
                       ip("fixed", "x", n=3, params="param { lr_mult: 0 } param { lr_mult: 0 }"),
                       'layer { name: "loss2" type: "ReLU" bottom: "fixed" top: "l2" loss_weight: 1 }'))
    names = [l.name for l in net.layers]
    need = dict(zip(names, net.layer_need_backward))
    # fc feeds a loss; branch feeds none; fixed feeds a loss but learns nothing and has no bottom needing diffs
    assert need["fc"] and need["loss"] and not need["branch"] and not need["fixed"] and not need["loss2"]
    assert not any(net.bottom_need_backward[names.index("fc")])               # the Input needs no gradient
    assert net.layer_dict["fixed"].param_propagate_down == [False, False]
    x = rng.normal(size=(2, 3)).astype(numpy.float32)
    net.forward(x=x)
    net.backward()
    numpy.testing.assert_allclose(net.params["fc"][0].diff, numpy.ones((4, 1)) * x.sum(0), rtol=1e-5)
    for name in ("branch", "fixed"):
        assert not net.params[name][0].diff.any() and not net.params[name][1].diff.any()
    assert not net.blobs["x"].diff.any()


def test_propagate_down_false_stops_the_gradient_below():
    net = Net(net_text(ip("a", "x"), ip("b", "a", n=2, extra="propagate_down: false"),
                       'layer { name: "loss" type: "Power" bottom: "b" top: "loss" loss_weight: 1 }'))
    assert net.layer_need_backward == [False, False, True, True]          # 'a' learns, but nothing reaches it
    assert net.bottom_need_backward[2] == [False]
    net.forward(x=rng.normal(size=(2, 3)))
    net.backward()
    assert net.params["b"][0].diff.any() and net.params["b"][1].diff.any()
    assert not net.params["a"][0].diff.any() and not net.blobs["a"].diff.any()
    with pytest.raises(ValueError, match=r"layer 'b': propagate_down has 2 values for 1 bottom blob\(s\)"):
        Net(net_text(ip("b", "x", extra="propagate_down: false propagate_down: true")))


def test_force_backward_gives_input_and_fixed_param_diffs_but_no_label_diff():
    text = net_text('layer { name: "lab" type: "Input" top: "label" input_param { shape { dim: 2 } } }',
                    ip("fc", "x", params="param { lr_mult: 0 } param { lr_mult: 0 }"),
                    'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }',
                    force_backward=True)
    net = Net(text)
    assert net.layer_dict["fc"].param_propagate_down == [True, True]
    assert net.bottom_need_backward[-1] == [True, False]                   # the label never gets one
    net.forward(x=rng.normal(size=(2, 3)), label=numpy.array([0, 3]))
    diffs = net.backward()
    assert diffs["x"].any() and net.params["fc"][0].diff.any() and not diffs["label"].any()
    unforced = Net(text.replace("force_backward: true\n", ""))
    assert unforced.layer_dict["fc"].param_propagate_down == [False, False]
    assert not any(unforced.layer_need_backward[:-1])


# ---- params shared by name --------------------------------------------------------------------------------

def shared(n_b=4, spec_b='param { name: "w" }'):
    return net_text(ip("a", "x", params='param { name: "w" }', extra="loss_weight: 1"),
                    ip("b", "x", n=n_b, params=spec_b, extra="loss_weight: 1"))


def test_params_shared_by_name_are_one_blob_whose_diff_sums_both_uses():
    net = Net(shared())
    assert net.params["a"][0] is net.params["b"][0] and net.params["a"][1] is not net.params["b"][1]
    assert len(net.learnable_params) == 3                                # w, a's bias, b's bias
    x = rng.normal(size=(2, 3)).astype(numpy.float32)
    net.forward(x=x)
    net.clear_param_diffs()
    net.backward()
    # d/dW of sum(x W^T) is 1 x colsum(x) per use; two uses add up in the one shared diff
    numpy.testing.assert_allclose(net.params["a"][0].diff, 2 * numpy.ones((4, 1)) * x.sum(0), rtol=1e-5)


def test_sharing_errors_name_both_layers_and_shapes():
    with pytest.raises(ValueError, match=r"layer 'b': shared param 'w' has shape \(5, 3\), but its owner 'a' "
                                         r"has shape \(4, 3\)"):
        Net(shared(n_b=5))
    with pytest.raises(ValueError, match="layer 'b': shared param 'w' has lr_mult 2.0 but its owner has 1.0"):
        Net(net_text(ip("a", "x", params='param { name: "w" lr_mult: 1 }'),
                     ip("b", "x", params='param { name: "w" lr_mult: 2 }')))


# ---- weights in and out -----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".caffemodel", ".caffemodel.h5"])
def test_save_then_copy_from_by_layer_name(tmp_path, suffix):
    source = Net(net_text(ip("fc1", "x"), ip("gone", "x")))
    path = tmp_path / f"w{suffix}"
    source.save(str(path))
    target = Net(net_text(ip("fc1", "x"), 'layer { name: "new" type: "InnerProduct" bottom: "x" top: "new" '
                                          'inner_product_param { num_output: 2 weight_filler { type: "constant" '
                                          'value: 0.5 } } }'))
    target.copy_from(str(path))                      # 'gone' is not in the target: ignored
    for mine, theirs in zip(target.params["fc1"], source.params["fc1"]):
        numpy.testing.assert_array_equal(mine.data, theirs.data)
    assert (target.params["new"][0].data == 0.5).all()                    # not in the file: keeps its init
    assert Net(net_text(ip("fc1", "x")), weights=str(path)).params["fc1"][1].data.tolist() == \
        source.params["fc1"][1].data.tolist()


def test_copy_from_mismatches_name_the_layer(tmp_path):
    Net(net_text(ip("fc1", "x"))).save(str(tmp_path / "w.caffemodel"))
    with pytest.raises(ValueError, match=r"w.caffemodel: cannot copy param 0 of layer 'fc1': its shape in the "
                                         r"file is \(4, 3\), the net's is \(6, 3\).*rename the layer"):
        Net(net_text(ip("fc1", "x", n=6))).copy_from(str(tmp_path / "w.caffemodel"))
    no_bias = ('layer { name: "fc1" type: "InnerProduct" bottom: "x" top: "fc1" '
               'inner_product_param { num_output: 4 bias_term: false } }')
    with pytest.raises(ValueError, match=r"incompatible number of blobs for layer 'fc1': the file has 2, the "
                                         r"net's InnerProduct layer has 1"):
        Net(net_text(no_bias)).copy_from(str(tmp_path / "w.caffemodel"))


def test_copy_from_takes_legacy_4d_shapes():
    param = caffe_pb2.NetParameter()
    layer = param.layer.add(name="fc1", type="InnerProduct")
    w = rng.normal(size=(4, 3)).astype(numpy.float32)
    for values, dims in ((w, (1, 1, 4, 3)), (numpy.arange(4, dtype=numpy.float32), (1, 1, 1, 4))):
        blob = layer.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
        blob.data.extend(values.ravel().tolist())
    net = Net(net_text(ip("fc1", "x")))
    net.copy_from_proto(param)
    numpy.testing.assert_array_equal(net.params["fc1"][0].data, w)
    numpy.testing.assert_array_equal(net.params["fc1"][1].data, numpy.arange(4))


# ---- errors name the layer and the blob -------------------------------------------------------------------

@pytest.mark.parametrize("layers, message", [
    ([ip("fc", "nowhere")], r"Unknown bottom blob 'nowhere' \(layer 'fc', bottom index 0\)"),
    ([ip("fc", "x"), ip("fc2", "x", top="fc")], r"layer 'fc2' \(InnerProduct\): top blob 'fc' is produced by "
                                                r"more than one layer"),
    ([ip("fc", "x", params="param {} param {} param {}")], r"layer 'fc' \(InnerProduct\) has 2 learnable "
                                                          r"blob\(s\) but 3 param specs"),
    (['layer { name: "r" type: "ReLU" bottom: "x" bottom: "x" top: "r" }'],
     r"ReLU layer 'r': takes exactly 1 bottom blob\(s\), got 2"),
])
def test_build_errors_name_the_layer_and_blob(layers, message):
    with pytest.raises(ValueError, match=message):
        Net(net_text(*layers))


# ---- Pooling forms not in the golden cases ----------------------------------------------------------------

def test_rectangular_pooling_by_hand():
    net = Net(net_text(
        'layer { name: "max" type: "Pooling" bottom: "x" top: "max" pooling_param { pool: MAX kernel_h: 2 '
        'kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0 } }',
        'layer { name: "ave" type: "Pooling" bottom: "x" top: "ave" pooling_param { pool: AVE kernel_h: 2 '
        'kernel_w: 3 stride_h: 2 stride_w: 1 } }', shape=(1, 1, 5, 7)))
    x = numpy.arange(35, dtype=numpy.float32).reshape(5, 7)
    out = net.forward(x=x[None, None])
    # MAX: out rows ceil((5 + 2 - 2) / 1) + 1 = 6, cols (7 - 3) / 2 + 1 = 3; x increases, so each window's
    # maximum is its bottom-right cell inside the image
    numpy.testing.assert_array_equal(out["max"][0, 0], x[[0, 1, 2, 3, 4, 4]][:, [2, 4, 6]])
    # AVE: rows ceil((5 - 2) / 2) + 1 = 3; the last row window hangs off the image and (no padding) divides by
    # the cells inside it only
    want = [[x[2 * i:2 * i + 2, j:j + 3].mean() for j in range(5)] for i in range(3)]
    numpy.testing.assert_allclose(out["ave"][0, 0], want, rtol=1e-6)


def test_pooling_kernel_larger_than_the_padded_input_is_an_error():
    with pytest.raises(ValueError, match=r"Pooling layer 'p': the kernel \(4, 10\) is larger than the padded "
                                         r"input 5x9 \(bottom \(1, 1, 5, 7\), pad \(0, 1\)\)"):
        Net(net_text('layer { name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param { kernel_h: 4 '
                     'kernel_w: 10 pad_h: 0 pad_w: 1 } }', shape=(1, 1, 5, 7)))
