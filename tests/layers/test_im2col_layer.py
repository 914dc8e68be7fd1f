"""Im2col: Caffe's row order c*kh*kw + ky*kw + kx with zero padding, stride and dilation; backward is col2im."""
import numpy
import pytest

from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(3)


def im2col_layer(param):
    return make_layer(f'name: "i2c" type: "Im2col" bottom: "x" top: "y" convolution_param {{ {param} }}')


def naive(x, kh, kw, s, p, d):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p[0] - d * (kh - 1) - 1) // s + 1, (w + 2 * p[1] - d * (kw - 1) - 1) // s + 1
    out = numpy.zeros((n, c * kh * kw, oh, ow))
    for ch in range(c):
        for ky in range(kh):
            for kx in range(kw):
                for oy in range(oh):
                    for ox in range(ow):
                        y, xx = oy * s - p[0] + ky * d, ox * s - p[1] + kx * d
                        if 0 <= y < h and 0 <= xx < w:
                            out[:, (ch * kh + ky) * kw + kx, oy, ox] = x[:, ch, y, xx]
    return out


@pytest.mark.parametrize("param, geometry", [
    ("kernel_size: 3 pad: 1", (3, 3, 1, (1, 1), 1)),
    ("kernel_h: 2 kernel_w: 3 stride: 2 pad_h: 1 pad_w: 0 dilation: 2", (2, 3, 2, (1, 0), 2)),
])
def test_values_and_gradient(param, geometry):
    x = rng.normal(size=(2, 2, 5, 7))
    _, top = run_layer(im2col_layer(param), x)
    numpy.testing.assert_array_equal(top[0].data, naive(x, *geometry))
    check_layer_gradient(im2col_layer(param), [x])


def test_errors():
    with pytest.raises(ValueError, match="Im2col layer 'i2c': kernel size is required"):
        run_layer(im2col_layer("pad: 1"), rng.normal(size=(1, 1, 4, 4)))
    with pytest.raises(ValueError, match="2-D im2col"):
        run_layer(im2col_layer("kernel_size: 1"), rng.normal(size=(1, 4, 4)))
