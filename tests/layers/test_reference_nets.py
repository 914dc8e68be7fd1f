"""The reference FCN nets (tests/vectors/reference/fcn-prototxt: voc-fcn32s, 16s, 8s, 8s-atonce; train, val, deploy)
build unmodified and give Caffe's shapes (FCN_REFERENCE.md section 2); FCN-8s runs forward and backward.

Train/val nets read their data with a Python layer; here it becomes an Input layer with tops data and label,
edited in the parsed NetParameter. Shapes are checked at build time (setup reshapes every layer) and after
net.reshape() for a new input size, so no full-size forward runs.
"""
import numpy
import pytest

from layers import Net
from layers.fillers import bilinear
from netspec import io
from tests.conftest import REFERENCE

MODELS = ["voc-fcn32s", "voc-fcn16s", "voc-fcn8s", "voc-fcn8s-atonce"]
CROPS = {                                # Crop layer -> offset, as written in the prototxts
    "voc-fcn32s": {"score": 19},
    "voc-fcn16s": {"score_pool4c": 5, "score": 27},
    "voc-fcn8s": {"score_pool4c": 5, "score_pool3c": 9, "score": 31},
    "voc-fcn8s-atonce": {"score_pool4c": 5, "score_pool3c": 9, "score": 31},
}
FCN8S_500 = {                            # FCN_REFERENCE.md section 2, a 500x500 input
    "data": (1, 3, 500, 500),
    "conv1_1": (1, 64, 698, 698), "conv1_2": (1, 64, 698, 698), "pool1": (1, 64, 349, 349),
    "conv2_2": (1, 128, 349, 349), "pool2": (1, 128, 175, 175),
    "conv3_3": (1, 256, 175, 175), "pool3": (1, 256, 88, 88),
    "conv4_3": (1, 512, 88, 88), "pool4": (1, 512, 44, 44),
    "conv5_3": (1, 512, 44, 44), "pool5": (1, 512, 22, 22),
    "fc6": (1, 4096, 16, 16), "fc7": (1, 4096, 16, 16), "score_fr": (1, 21, 16, 16),
    "upscore2": (1, 21, 34, 34), "score_pool4": (1, 21, 44, 44), "score_pool4c": (1, 21, 34, 34),
    "fuse_pool4": (1, 21, 34, 34), "upscore_pool4": (1, 21, 70, 70),
    "score_pool3": (1, 21, 88, 88), "score_pool3c": (1, 21, 70, 70), "fuse_pool3": (1, 21, 70, 70),
    "upscore8": (1, 21, 568, 568), "score": (1, 21, 500, 500),
}
UPSCORE_500 = {
    "voc-fcn32s": {"fc7": (1, 4096, 16, 16), "upscore": (1, 21, 544, 544)},
    "voc-fcn16s": {"upscore2": (1, 21, 34, 34), "score_pool4c": (1, 21, 34, 34), "upscore16": (1, 21, 560, 560)},
    "voc-fcn8s": FCN8S_500,
    "voc-fcn8s-atonce": dict(FCN8S_500, scale_pool4=(1, 512, 44, 44), scale_pool3=(1, 256, 88, 88)),
}


def reference_net(model, kind, shape=(1, 3, 500, 500)):
    """The parsed prototxt; for train/val the Python data layer becomes an Input with tops data and label."""
    param = io.read_net(str(REFERENCE / model / f"{kind}.prototxt"))
    for layer in param.layer:
        if layer.type == "Python":
            assert list(layer.top) == ["data", "label"]
            layer.type = "Input"
            layer.ClearField("python_param")
            layer.input_param.shape.add().dim.extend(shape)
            layer.input_param.shape.add().dim.extend((shape[0], 1) + tuple(shape[2:]))
        elif layer.type == "Input":
            del layer.input_param.shape[0].dim[:]
            layer.input_param.shape[0].dim.extend(shape)
    return param


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", ["train", "val", "deploy"])
def test_reference_net_builds_with_caffes_shapes(model, kind):
    net = Net(reference_net(model, kind), phase="TRAIN" if kind == "train" else "TEST")
    types = {l.type for l in net.layers}
    assert {"Convolution", "Deconvolution", "Crop"} <= types
    assert types - {"Split"} == {l.type for l in reference_net(model, kind).layer}
    if kind != "deploy":
        assert "Dropout" in types and "SoftmaxWithLoss" in types
    for name, shape in UPSCORE_500[model].items():
        assert net.blobs[name].shape == shape, name
    assert net.blobs["score"].shape == (1, 21, 500, 500)
    crops = {l.name: l.offsets for l in net.layers if l.type == "Crop"}
    assert crops == {name: [offset, offset] for name, offset in CROPS[model].items()}
    if kind == "deploy":
        assert net.outputs == ["score"]
    else:
        assert net.outputs == ["loss"] and net.blobs["loss"].shape == ()
        assert net.layer_dict["loss"].loss_weights == [1.0]
    if model == "voc-fcn8s-atonce":                     # the fixed skip scales (lr_mult 0)
        numpy.testing.assert_array_equal(net.params["scale_pool4"][0].data, numpy.full(512, 0.01, numpy.float32))
        numpy.testing.assert_array_equal(net.params["scale_pool3"][0].data, numpy.full(256, 1e-4, numpy.float32))
    # another image size: reshape only (every layer's reshape), then the crops follow the input
    for h, w in [(375, 500), (1, 1)]:
        net.blobs["data"].reshape(1, 3, h, w)
        if kind != "deploy":
            net.blobs["label"].reshape(1, 1, h, w)
        net.reshape()
        assert net.blobs["score"].shape == (1, 21, h, w)
    assert net.blobs["pool5"].shape == (1, 512, 7, 7)   # a 1x1 input: pool5 7x7, score_fr 1x1
    assert net.blobs["score_fr"].shape == (1, 21, 1, 1)


def _scaled_fcn8s(size, divisor):
    """voc-fcn8s deploy with the VGG widths divided by `divisor` (21-class layers kept) and force_backward."""
    param = reference_net("voc-fcn8s", "deploy", (1, 3, size, size))
    param.force_backward = True
    for layer in param.layer:
        p = layer.convolution_param
        if layer.type == "Convolution" and p.num_output != 21:
            p.num_output //= divisor
    return param


def test_fcn8s_forward_backward_at_a_small_input():
    """FCN-8s deploy on a 1x3x32x32 input (pad 100 makes conv1 230x230), forward and backward, in float64.

    To stay fast and small the net is built with its VGG widths divided by 8 (num_output edited in the parsed
    message: 64 -> 8 ... 4096 -> 512; the 21-class score and upsampling layers keep 21): at full width fc6
    alone is 4096x512x7x7 = 400 MB of float32 weights. Convolutions get random He-scaled weights, the
    upsampling deconvolutions bilinear kernels on the class diagonal (as FCN's surgery.interp sets them).
    The data and param gradients are checked against central differences along random directions.
    """
    net = Net(_scaled_fcn8s(32, 8), dtype=numpy.float64)
    rng = numpy.random.default_rng(1)
    for layer in net.layers:
        if layer.type == "Convolution":
            w = layer.blobs[0]
            fan_in = numpy.prod(w.shape[1:])
            w.data[...] = rng.normal(scale=numpy.sqrt(2.0 / fan_in), size=w.shape)
            layer.blobs[1].data[...] = rng.normal(scale=0.1, size=layer.blobs[1].shape)
        elif layer.type == "Deconvolution":
            w = layer.blobs[0]
            w.data[...] = 0
            w.data[range(21), range(21)] = bilinear((21, 1) + w.shape[2:])[:, 0]
    x = rng.uniform(-1, 1, size=(1, 3, 32, 32))
    out = net.forward(data=x)
    expected = {"conv1_1": (1, 8, 230, 230), "pool1": (1, 8, 115, 115), "pool3": (1, 32, 29, 29),
                "pool4": (1, 64, 15, 15), "pool5": (1, 64, 8, 8), "fc7": (1, 512, 2, 2), "upscore2": (1, 21, 6, 6),
                "upscore_pool4": (1, 21, 14, 14), "upscore8": (1, 21, 120, 120), "score": (1, 21, 32, 32)}
    assert {name: net.blobs[name].shape for name in expected} == expected
    assert out["score"].shape == (1, 21, 32, 32) and numpy.isfinite(out["score"]).all()
    g = rng.normal(size=(1, 21, 32, 32))                 # objective: sum(score * g)
    net.clear_param_diffs()
    diffs = net.backward(score=g)
    assert diffs["data"].shape == x.shape and numpy.abs(diffs["data"]).max() > 0

    def objective():
        return float((net.forward(data=x)["score"] * g).sum())

    eps = 1e-8             # float64; a larger step can carry a pre-activation across a ReLU kink
    checks = [("data", net.blobs["data"], diffs["data"].copy())]
    for name in ("conv1_1", "fc6", "score_pool4", "score_pool3", "upscore8"):
        checks.append((f"{name} weight", net.params[name][0], net.params[name][0].diff.copy()))
    for what, blob, grad in checks:
        v = rng.normal(size=blob.shape)
        keep = (x if what == "data" else blob.data).copy()
        values = []
        for sign in (1, -1):
            if what == "data":
                x = keep + sign * eps * v
            else:
                blob.data[...] = keep + sign * eps * v
            values.append(objective())
        if what == "data":
            x = keep
        else:
            blob.data[...] = keep
        numeric = (values[0] - values[1]) / (2 * eps)
        analytic = float((grad * v).sum())
        assert abs(numeric - analytic) <= 1e-5 * max(1.0, abs(analytic)), (what, numeric, analytic)
