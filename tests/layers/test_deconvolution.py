"""Deconvolution: numerical gradients, hand-derived output sizes, the transpose relation to Convolution, errors."""
import numpy
import pytest

from layers import Net
from layers.fillers import bilinear
from layers.kernels.geometry import deconv_outsize
from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(3)


def deconv(conv_param, num_output=4):
    return make_layer(f'name: "up" type: "Deconvolution" bottom: "x" top: "y" '
                      f'convolution_param {{ num_output: {num_output} {conv_param} '
                      f'weight_filler {{ type: "gaussian" }} bias_filler {{ type: "gaussian" }} }}')


def run(layer, *arrays):
    bottoms, tops = run_layer(layer, *arrays)
    return bottoms, tops[0]


@pytest.mark.parametrize("conv_param", [
    "kernel_size: 4 stride: 2",                             # FCN upscore2 (with a bias here)
    "kernel_size: 4 stride: 2 pad: 1",
    "kernel_size: 3 stride: 2 pad: 1 dilation: 2",
    "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0",
    "kernel_size: 1",                                       # the 1x1 path without col2im
    "kernel_size: 3 stride: 2 group: 2 bias_term: false",
    "kernel_size: 2 stride: 3",                             # gaps between the output patches
])
def test_deconvolution_gradient(conv_param):
    check_layer_gradient(deconv(conv_param), [rng.normal(size=(2, 4, 3, 4))])


def test_deconvolution_output_size_and_weight_layout():
    # Caffe's rule stride*(H-1) + extent - 2*pad; weight (C_in, C_out/group, kh, kw)
    assert deconv_outsize(16, 4, 2, 0) == 34                # FCN-8s upscore2 at 500x500
    assert deconv_outsize(16, 64, 32, 0) == 544             # FCN-32s upscore
    assert deconv_outsize(70, 16, 8, 0) == 568              # FCN-8s upscore8
    assert deconv_outsize(7, 3, 2, 1, 2) == 15              # dilation 2: extent 5
    layer = deconv("kernel_size: 4 stride: 2 pad: 1 group: 2", num_output=6)
    _, top = run(layer, rng.normal(size=(2, 4, 5, 7)))
    assert layer.blobs[0].shape == (4, 3, 4, 4)
    assert layer.blobs[1].shape == (6,)
    assert top.shape == (2, 6, 2 * 4 + 4 - 2, 2 * 6 + 4 - 2)


def test_deconvolution_is_the_transpose_of_convolution():
    """<conv(x), y> == <x, deconv(y)> when both use the same weight and no bias."""
    geometry = "kernel_size: 3 stride: 2 pad: 1 dilation: 2 group: 2 bias_term: false"
    conv = make_layer(f'name: "c" type: "Convolution" bottom: "x" top: "y" '
                      f'convolution_param {{ num_output: 6 {geometry} }}')
    up = make_layer(f'name: "d" type: "Deconvolution" bottom: "y" top: "x" '
                    f'convolution_param {{ num_output: 4 {geometry} }}')
    x = rng.normal(size=(2, 4, 11, 9))
    (xb,), cx = run(conv, x)
    w = rng.normal(size=conv.blobs[0].shape)         # conv (C_out, C_in/g, k, k) is deconv's (C_in, C_out/g, k, k)
    conv.blobs[0].data[...] = w
    conv.run_forward([xb], [cx])
    y = rng.normal(size=cx.shape)
    (yb,), dy = run(up, y)
    up.blobs[0].data[...] = w
    up.run_forward([yb], [dy])
    assert dy.shape == x.shape
    numpy.testing.assert_allclose((cx.data * y).sum(), (x * dy.data).sum(), rtol=1e-10)


def test_bilinear_deconvolution_upsamples_a_constant_to_a_constant():
    """FCN's fixed upsampling: a group-wise bilinear k4 s2 deconv maps a constant map to the same constant
    away from the borders (each output pixel gets weights summing to 1)."""
    layer = make_layer('name: "up" type: "Deconvolution" bottom: "x" top: "y" '
                       'convolution_param { num_output: 3 group: 3 kernel_size: 4 stride: 2 bias_term: false '
                       'weight_filler { type: "bilinear" } }')
    _, top = run(layer, numpy.full((1, 3, 5, 6), 2.5, dtype=numpy.float32))
    numpy.testing.assert_array_equal(layer.blobs[0].data, bilinear((3, 1, 4, 4)))
    assert top.shape == (1, 3, 12, 14)
    numpy.testing.assert_allclose(top.data[:, :, 2:-2, 2:-2], 2.5, rtol=1e-6)


def test_deconvolution_lr_mult_zero_in_a_net():
    """A fixed (lr_mult 0) deconv, as FCN's upscore layers, computes no weight diff without force_backward but
    still passes the gradient down."""
    net = Net('''
        layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
        layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
                convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" } } }
        layer { name: "up" type: "Deconvolution" bottom: "conv" top: "up" param { lr_mult: 0 } loss_weight: 1
                convolution_param { num_output: 2 kernel_size: 4 stride: 2 bias_term: false
                                    weight_filler { type: "bilinear" } } }
    ''')
    assert net.blobs["up"].shape == (1, 2, 8, 8)
    weight = net.params["up"][0].data.copy()
    net.forward(data=rng.normal(size=(1, 2, 3, 3)))
    net.backward()
    assert net.layer_dict["up"].param_propagate_down == [False]
    assert not net.params["up"][0].diff.any()
    numpy.testing.assert_array_equal(net.params["up"][0].data, weight)
    # d(sum up)/d conv = the sum of each input channel's kernel over its output channels: 4 for a bilinear k4
    numpy.testing.assert_allclose(net.blobs["conv"].diff, 4.0 * 2, rtol=1e-6)


def test_deconvolution_errors():
    with pytest.raises(ValueError, match=r"Deconvolution layer 'up': pad \(5, 5\) is too large"):
        run(deconv("kernel_size: 2 stride: 1 pad: 5"), rng.normal(size=(1, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"Deconvolution layer 'up': group 3 must divide"):
        run(deconv("kernel_size: 2 group: 3"), rng.normal(size=(1, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"Deconvolution layer 'up': kernel size is required"):
        run(deconv(""), rng.normal(size=(1, 4, 3, 3)))


def test_convolution_kernel_larger_than_padded_input_is_an_error():
    conv = make_layer('name: "fc6" type: "Convolution" bottom: "x" top: "y" '
                      'convolution_param { num_output: 2 kernel_size: 7 }')
    with pytest.raises(ValueError, match=r"Convolution layer 'fc6': the kernel \(7, 7\) .* larger than the "
                                         r"padded input 5x5"):
        run(conv, rng.normal(size=(1, 1, 5, 5)))
