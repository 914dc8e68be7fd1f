"""LRN: gradient checks for both regions and loop oracles written from Caffe's definitions (the golden cases
in test_golden.py cover local_size 5 across channels and 3 within a channel against real Caffe)."""
import numpy
import pytest

from layers import Blob
from tests.gradient_check import check_layer_gradient, make_layer

rng = numpy.random.default_rng(5)


def lrn(params):
    return make_layer(f'name: "norm" type: "LRN" bottom: "x" top: "y" lrn_param {{ {params} }}')


def forward(layer, x):
    bottom, top = Blob(*x.shape, dtype=numpy.float64), Blob(dtype=numpy.float64)
    bottom.data[...] = x
    layer.run_setup([bottom], [top])
    layer.run_forward([bottom], [top])
    return top.data


def across_oracle(x, size, alpha, beta, k):
    n, c = x.shape[:2]
    y = numpy.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - (size - 1) // 2), min(c, ch + (size - 1) // 2 + 1)
        s = k + alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] * s ** -beta
    return y


def within_oracle(x, size, alpha, beta):
    pad = (size - 1) // 2
    padded = numpy.pad(x ** 2, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    mean = numpy.zeros_like(x)
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            mean[:, :, i, j] = padded[:, :, i:i + size, j:j + size].sum(axis=(2, 3)) / size ** 2
    return x * (1 + alpha * mean) ** -beta


@pytest.mark.parametrize("size,channels", [(5, 7), (3, 4), (5, 3), (1, 2)])
def test_across_channels_forward_and_gradient(size, channels):
    x = rng.normal(size=(2, channels, 3, 4))
    params = f"local_size: {size} alpha: 2 beta: 0.75 k: 1.5"
    numpy.testing.assert_allclose(forward(lrn(params), x), across_oracle(x, size, 2, 0.75, 1.5), rtol=1e-12)
    check_layer_gradient(lrn(params), [x])


@pytest.mark.parametrize("size", [3, 5])
def test_within_channel_forward_and_gradient(size):
    x = rng.normal(size=(2, 3, 5, 4))
    params = f"local_size: {size} alpha: 3 beta: 0.625 k: 7 norm_region: WITHIN_CHANNEL"     # k is ignored
    numpy.testing.assert_allclose(forward(lrn(params), x), within_oracle(x, size, 3, 0.625), rtol=1e-12)
    check_layer_gradient(lrn(params), [x])


def test_lrn_errors():
    with pytest.raises(ValueError, match=r"LRN layer 'norm': lrn_param.local_size must be odd, got 4"):
        forward(lrn("local_size: 4"), rng.normal(size=(1, 5, 2, 2)))
    with pytest.raises(ValueError, match=r"must have 4 axes"):
        forward(lrn(""), rng.normal(size=(2, 5, 3)))
    layer, blob = lrn(""), Blob(1, 5, 2, 2)
    with pytest.raises(ValueError, match=r"cannot run in place"):
        layer.run_setup([blob], [blob])
