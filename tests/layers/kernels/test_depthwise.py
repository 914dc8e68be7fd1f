"""Depthwise convolution (group == channels, MobileNet): the tap-loop kernels of layers/kernels/depthwise.py against the
generic grouped convolution, for multipliers, strides, pads, dilations and rectangular kernels, and the
Convolution layer's numerical gradient on that path."""
import numpy
import pytest

from layers.kernels.depthwise import depthwise_data_grad, depthwise_forward, depthwise_weight_grad, is_depthwise
from layers.kernels import conv
from layers.kernels.geometry import ConvGeometry, conv_outsize
from tests.gradient_check import check_layer_gradient, make_layer

rng = numpy.random.default_rng(8)


@pytest.mark.parametrize("c, mult, kernel, stride, pad, dilation, hw", [
    (8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (7, 9)),
    (4, 2, (3, 3), (2, 2), (1, 1), (1, 1), (9, 11)),
    (3, 3, (5, 3), (2, 1), (2, 0), (1, 2), (8, 10)),
    (5, 1, (3, 3), (3, 2), (0, 2), (2, 1), (11, 6)),
    (16, 2, (3, 3), (1, 1), (1, 1), (1, 1), (6, 5)),          # several blocks of channels, a multiplier
])
def test_matches_the_grouped_convolution(c, mult, kernel, stride, pad, dilation, hw):
    x = rng.normal(size=(2, c, *hw)).astype(numpy.float32)
    weight = rng.normal(size=(c * mult, 1, *kernel)).astype(numpy.float32)
    bias = rng.normal(size=c * mult).astype(numpy.float32)
    out = tuple(conv_outsize(s, k, st, p, d) for s, k, st, p, d in zip(hw, kernel, stride, pad, dilation))
    geometry = dict(stride=stride, pad=pad, dilation=dilation, group=c)
    geom = ConvGeometry(kernel, stride, pad, dilation, c)
    want = conv.forward(x, weight, bias, numpy.empty((2, c * mult, *out), numpy.float32), geom, "columns")
    have = depthwise_forward(x, weight, bias, numpy.empty_like(want), **geometry)
    numpy.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5)
    dy = rng.normal(size=want.shape).astype(numpy.float32)
    dx = conv.data_grad(dy, weight, numpy.empty_like(x), geom, "columns")
    numpy.testing.assert_allclose(depthwise_data_grad(dy, weight, numpy.empty_like(x), **geometry), dx,
                                  rtol=1e-4, atol=1e-5)
    dw = conv.weight_grad(x, dy, numpy.zeros_like(weight), geom, "columns")
    numpy.testing.assert_allclose(depthwise_weight_grad(x, dy, numpy.zeros_like(weight), **geometry), dw,
                                  rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("c, mult, kernel, stride, pad, dilation, hw", [
    (8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (12, 9)), (6, 2, (3, 3), (2, 2), (1, 1), (1, 1), (9, 8)),
    (3, 1, (5, 3), (3, 2), (2, 0), (2, 1), (11, 10)), (4, 1, (3, 3), (1, 1), (4, 4), (1, 1), (2, 3)),
])
def test_the_wide_row_forward_sums_as_the_tap_loop_bit_for_bit(c, mult, kernel, stride, pad, dilation, hw):
    """Oracle: zero, then each tap's strided window of the zero-padded input times its weight, row-major, then
    the bias (Caffe's im2col + GEMM order)."""
    x = rng.normal(size=(2, c, *hw)).astype(numpy.float32)
    weight = rng.normal(size=(c * mult, 1, *kernel)).astype(numpy.float32)
    bias = rng.normal(size=c * mult).astype(numpy.float32)
    out = [conv_outsize(s, k, st, p, d) for s, k, st, p, d in zip(hw, kernel, stride, pad, dilation)]
    padded = numpy.pad(numpy.repeat(x, mult, axis=1), [(0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])])
    want = numpy.zeros((2, c * mult, *out), numpy.float32)
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            window = padded[:, :, ky * dilation[0]::stride[0], kx * dilation[1]::stride[1]][:, :, :out[0], :out[1]]
            want += window * weight[:, 0, ky, kx, None, None]
    want += bias[:, None, None]
    have = depthwise_forward(x, weight, bias, numpy.empty_like(want), stride, pad, dilation)
    assert numpy.array_equal(have, want)


def test_only_group_equal_channels_with_one_input_channel_per_group():
    assert is_depthwise(8, 8, (8, 1, 3, 3)) and is_depthwise(4, 4, (8, 1, 3, 3))
    assert not is_depthwise(8, 4, (8, 2, 3, 3)) and not is_depthwise(1, 1, (4, 1, 3, 3))


@pytest.mark.parametrize("param", ["num_output: 3 group: 3 kernel_size: 3 pad: 1",
                                   "num_output: 4 group: 2 kernel_size: 3 stride: 2 dilation: 1 pad: 1"])
def test_layer_gradient_on_the_depthwise_path(param):
    layer = make_layer(f'name: "dw" type: "Convolution" '
                       f'convolution_param {{ {param} bias_filler {{ type: "gaussian" }} }}')
    check_layer_gradient(layer, [rng.normal(size=(2, layer.param.convolution_param.group, 5, 6))])
