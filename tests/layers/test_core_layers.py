"""Numerical gradient checks and hand-derived shapes for the core layers."""
import numpy
import pytest

from layers.pooling import pool_outsize
from tests.gradient_check import check_layer_gradient, make_layer

rng = numpy.random.default_rng(0)


def randn(*shape):
    return rng.normal(size=shape)


@pytest.mark.parametrize("conv", [
    "kernel_size: 3 pad: 1",
    "kernel_size: 3 stride: 2",
    "kernel_h: 2 kernel_w: 3 pad_h: 1 pad_w: 0 stride_h: 1 stride_w: 2",
    "kernel_size: 3 dilation: 2 pad: 2",
    "kernel_size: 1",
    "kernel_size: 3 group: 2 bias_term: false",
])
def test_convolution_gradient(conv):
    layer = make_layer(f'name: "c" type: "Convolution" bottom: "x" top: "y" '
                       f'convolution_param {{ num_output: 4 {conv} weight_filler {{ type: "gaussian" }} '
                       f'bias_filler {{ type: "gaussian" }} }}')
    check_layer_gradient(layer, [randn(2, 4, 5, 6)])


def test_inner_product_gradient():
    for extra in ("", "transpose: true", "bias_term: false"):
        layer = make_layer(f'name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
                           f'inner_product_param {{ num_output: 3 {extra} }}')
        check_layer_gradient(layer, [randn(2, 3, 2, 2)])


@pytest.mark.parametrize("pool", [
    "pool: MAX kernel_size: 2 stride: 2",
    "pool: MAX kernel_size: 3 stride: 2 pad: 1",
    "pool: AVE kernel_size: 3 stride: 2 pad: 1",
    "pool: AVE kernel_size: 2 stride: 2",
    "pool: MAX global_pooling: true",
    "pool: AVE global_pooling: true",
])
def test_pooling_gradient(pool):
    layer = make_layer(f'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param {{ {pool} }}')
    x = rng.permutation(2 * 3 * 5 * 7).reshape(2, 3, 5, 7) * 0.1     # tie-free, as max pooling needs
    check_layer_gradient(layer, [x])


def test_pooling_outsize_is_caffes_ceil_with_padding_rule():
    assert pool_outsize(9, 2, 2, 0) == 5                # ceil((9-2)/2)+1
    assert pool_outsize(9, 2, 2, 1) == 5                # ceil gives 6, but that window starts in the padding
    assert pool_outsize(698, 2, 2, 0) == 349
    assert pool_outsize(175, 2, 2, 0) == 88


@pytest.mark.parametrize("slope", [0, 0.1])
def test_relu_gradient(slope):
    layer = make_layer(f'name: "r" type: "ReLU" bottom: "x" top: "y" relu_param {{ negative_slope: {slope} }}')
    x = randn(2, 3, 4, 5)
    x[numpy.abs(x) < 0.01] = 0.5                         # keep away from the kink
    check_layer_gradient(layer, [x])


def test_softmax_gradient():
    check_layer_gradient(make_layer('name: "s" type: "Softmax" bottom: "x" top: "y"'), [randn(2, 4, 3, 2)])


@pytest.mark.parametrize("loss_param", ["", "ignore_label: 255", "ignore_label: 255 normalize: false",
                                        "ignore_label: 255 normalization: FULL", "normalization: NONE"])
def test_softmax_with_loss_gradient(loss_param):
    layer = make_layer(f'name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" '
                       f'loss_param {{ {loss_param} }}')
    label = rng.integers(0, 4, size=(2, 1, 3, 2)).astype(float)
    label[0, 0, 0, 0] = 255 if "ignore" in loss_param else 1
    check_layer_gradient(layer, [randn(2, 4, 3, 2), label], propagate_down=[True, False])


def test_softmax_with_loss_rejects_colour_labels():
    from layers import Blob
    layer = make_layer('name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" '
                       'loss_param { ignore_label: 255 }')
    x, label, loss = Blob(1, 3, 2, 2), Blob(1, 1, 2, 2), Blob()
    label.data[...] = [[[[0, 128], [1, 255]]]]
    layer.run_setup([x, label], [loss])
    with pytest.raises(ValueError, match=r"SoftmaxWithLoss layer 'l': label values \[128\].*class indices"):
        layer.run_forward([x, label], [loss])


def test_split_sums_gradients():
    layer = make_layer('name: "s" type: "Split" bottom: "x" top: "a" top: "b"')
    check_layer_gradient(layer, [randn(2, 3)], top_count=2)
