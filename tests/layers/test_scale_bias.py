"""Scale and Bias: gradients for learned and second-bottom factors, param shapes from axis/num_axes, default
fillers, in place, lr_mult 0, and errors."""
import numpy
import pytest

from layers import Net
from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(11)


def layer_of(kind, param, bottoms=1):
    names = " ".join(f'bottom: "{n}"' for n in ["x", "s"][:bottoms])
    field = "scale_param" if kind == "Scale" else "bias_param"
    return make_layer(f'name: "sc" type: "{kind}" {names} top: "y" {field} {{ {param} }}')


def run(layer, *arrays):
    bottoms, tops = run_layer(layer, *arrays)
    return bottoms, tops[0]


@pytest.mark.parametrize("kind", ["Scale", "Bias"])
@pytest.mark.parametrize("param, shape", [
    ("", (3,)),                                  # axis 1, num_axes 1: per channel
    ("axis: 0 num_axes: 2", (2, 3)),
    ("axis: 2 num_axes: -1", (4, 2)),
    ("axis: -1", (2,)),
    ("num_axes: 0", ()),                         # a scalar
    ("axis: 0 num_axes: -1", (2, 3, 4, 2)),      # as large as the bottom: nothing to sum over
])
def test_learned_param_shape_and_gradient(kind, param, shape):
    filler = "filler { type: 'gaussian' }"
    layer = layer_of(kind, f"{param} {filler}")
    x = rng.normal(size=(2, 3, 4, 2))
    run(layer, x)
    assert layer.blobs[0].shape == shape
    check_layer_gradient(layer_of(kind, f"{param} {filler}"), [x])


@pytest.mark.parametrize("kind", ["Scale", "Bias"])
@pytest.mark.parametrize("param, factor_shape", [("axis: 1", (3, 4)), ("axis: 0", (2, 3)), ("", ())])
def test_second_bottom_gradient(kind, param, factor_shape):
    layer = layer_of(kind, param, bottoms=2)
    check_layer_gradient(layer, [rng.normal(size=(2, 3, 4, 2)), rng.normal(size=factor_shape)])
    assert layer.blobs == []


def test_scale_with_bias_term_gradient():
    layer = layer_of("Scale", "bias_term: true filler { type: 'gaussian' } bias_filler { type: 'gaussian' }")
    check_layer_gradient(layer, [rng.normal(size=(2, 3, 4, 2))])
    assert [b.shape for b in layer.blobs] == [(3,), (3,)]
    # with a second bottom the bias spans the factor's axes
    layer = layer_of("Scale", "axis: 1 bias_term: true bias_filler { type: 'gaussian' }", bottoms=2)
    check_layer_gradient(layer, [rng.normal(size=(2, 3, 4, 2)), rng.normal(size=(3, 4))])
    assert [b.shape for b in layer.blobs] == [(3, 4)]


def test_values_and_default_fillers():
    x = rng.normal(size=(2, 3, 4)).astype(numpy.float32)
    layer = layer_of("Scale", "bias_term: true")
    bottoms, top = run(layer, x)
    numpy.testing.assert_array_equal(layer.blobs[0].data, 1)     # Caffe's default: the identity
    numpy.testing.assert_array_equal(layer.blobs[1].data, 0)
    numpy.testing.assert_array_equal(top.data, x)
    layer.blobs[0].data[...] = [1, 2, 3]
    layer.blobs[1].data[...] = [0, 10, 20]
    layer.run_forward(bottoms, [top])
    numpy.testing.assert_allclose(top.data, x * [[[1], [2], [3]]] + [[[0], [10], [20]]], rtol=1e-6)
    bias = layer_of("Bias", "")
    _, top = run(bias, x)
    numpy.testing.assert_array_equal(bias.blobs[0].data, 0)
    _, top = run(layer_of("Bias", "axis: 0", bottoms=2), x, numpy.array([1.0, -1.0], dtype=numpy.float32))
    numpy.testing.assert_array_equal(top.data, x + numpy.array([1, -1], dtype=numpy.float32).reshape(2, 1, 1))


NET = '''
force_backward: {force}
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 dim: 4 dim: 5 }} }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param {{ num_output: 3 kernel_size: 1 weight_filler {{ type: "gaussian" }} }} }}
layer {{ name: "scale_pool4" type: "Scale" bottom: "conv" top: "{top}" param {{ lr_mult: {lr} }} loss_weight: 1
        scale_param {{ filler {{ type: "constant" value: 0.01 }} }} }}
'''


@pytest.mark.parametrize("in_place", [False, True])
def test_fixed_scale_in_a_net(in_place):
    """FCN-8s at-once's scale_pool4: lr_mult 0 keeps the 0.01 fixed and computes no param diff; in place gives
    the same gradients as not in place."""
    net = Net(NET.format(force="false", top="conv" if in_place else "scaled", lr=0))
    x = rng.normal(size=(2, 3, 4, 5))
    out_name = "conv" if in_place else "scaled"
    out = net.forward(data=x)[out_name].copy()
    net.backward()
    assert net.layer_dict["scale_pool4"].param_propagate_down == [False]
    assert not net.params["scale_pool4"][0].diff.any()
    numpy.testing.assert_array_equal(net.params["scale_pool4"][0].data, numpy.float32(0.01))
    reference = Net(NET.format(force="false", top="scaled", lr=1))
    reference.params["conv"][0].data[...] = net.params["conv"][0].data
    numpy.testing.assert_allclose(reference.forward(data=x)["scaled"], out, rtol=1e-6)
    reference.backward()
    numpy.testing.assert_allclose(reference.params["conv"][0].diff, net.params["conv"][0].diff, rtol=1e-6)
    # the learned scale's diff (loss = sum of top, so d/ds_c = sum of conv over channel c)
    numpy.testing.assert_allclose(reference.params["scale_pool4"][0].diff,
                                  reference.blobs["conv"].data.sum(axis=(0, 2, 3)), rtol=1e-5)


def test_in_place_scale_gets_the_learned_diff_from_its_input():
    net = Net(NET.format(force="true", top="conv", lr=1))
    net.forward(data=rng.normal(size=(2, 3, 4, 5)))
    conv_out = (net.blobs["conv"].data / numpy.float32(0.01))          # undo the in-place scaling
    net.backward()
    numpy.testing.assert_allclose(net.params["scale_pool4"][0].diff, conv_out.sum(axis=(0, 2, 3)), rtol=1e-4)


def test_errors():
    x = numpy.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"Scale layer 'sc': dimension mismatch: the scale has shape \(4,\) but "
                                         r"bottom\[0\] \(2, 3, 4\) has \(3,\)"):
        run(layer_of("Scale", "axis: 1", bottoms=2), x, numpy.zeros(4))
    with pytest.raises(ValueError, match=r"Bias layer 'sc': the bias of shape \(3, 4, 5\) extends past"):
        run(layer_of("Bias", "axis: 1", bottoms=2), x, numpy.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"Scale layer 'sc': the scale spans axes 2..3, past the end"):
        run(layer_of("Scale", "axis: 2 num_axes: 2"), x)
    with pytest.raises(ValueError, match=r"Bias layer 'sc': num_axes must be >= 0, or -1"):
        run(layer_of("Bias", "num_axes: -2"), x)
    with pytest.raises(ValueError, match=r"Scale layer 'sc': takes at most 2 bottom blob\(s\), got 3"):
        run(make_layer('name: "sc" type: "Scale" bottom: "a" bottom: "b" bottom: "c" top: "y"'), x, x, x)
