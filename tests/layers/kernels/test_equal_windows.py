"""Equal input windows give equal outputs, for every CPU convolution strategy and the reference, forced one at a
time over random geometries (a seeded loop), on an image that is constant per channel:

- every output whose window sees only padding is exactly the bias, bit for bit, as in Caffe (its column is all
  zeros), so a zero padding margin (FCN's pad 100) stays exactly constant whatever strategy computed it;
- every output whose window lies inside the image is the same float up to the BLAS's rounding: bitwise equality
  there is NOT what this machine's OpenBLAS gives even for the reference (numpy.matmul of a matrix whose columns
  are all equal returns columns that differ in the last bit where its edge micro-kernels take over;
  test_blas_rounds_equal_columns_alike shows it), so the BLAS strategies and the reference are held to 4 ulps of
  the sums' scale, and the bitwise form is asked of depthwise (numpy multiply-adds, one order for every window)."""
import numpy
import pytest

from layers.kernels import conv
from layers.kernels.geometry import ConvGeometry

STRATEGIES = [name for name in conv.STRATEGIES if name != "winograd_gpu"]


def random_case(rng):
    """(geometry, x, w, b): channels and geometry drawn at random (now and then depthwise or pointwise, so that
    every strategy gets cases), x constant per channel."""
    kind = rng.random()
    c = int(rng.integers(1, 20))
    kernel = tuple(int(k) for k in rng.integers(1, 5, size=2))
    if rng.random() < 0.4:
        kernel = (3, 3)                          # Winograd's shape, often
    stride = (1, 1) if rng.random() < 0.5 else tuple(int(s) for s in rng.integers(1, 4, size=2))
    dilation = (1, 1) if rng.random() < 0.7 else (2, 2)
    pad = tuple(int(p) for p in rng.integers(0, 7, size=2))
    if kind < 0.15:                              # depthwise: one input channel per group
        c = max(c, 2)
        group, m = c, c * int(rng.integers(1, 3))
    elif kind < 0.3:                             # pointwise
        kernel, stride, pad, dilation = (1, 1), (1, 1), (0, 0), (1, 1)
        group, m = 1, int(rng.integers(1, 12))
    else:
        group = int(rng.choice([1, 1, 2]))
        c, m = group * c, group * int(rng.integers(1, 12))
    geom = ConvGeometry(kernel, stride, pad, dilation, group)
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(6, 16)), int(rng.integers(6, 16))
    x = numpy.broadcast_to(rng.normal(size=(1, c, 1, 1)), (n, c, h, w)).astype(numpy.float32)
    weight = rng.normal(size=(m, c // group, *kernel)).astype(numpy.float32)
    bias = rng.normal(size=m).astype(numpy.float32)
    return geom, numpy.ascontiguousarray(x), weight, bias


def window_kinds(geom, h, w, oh, ow):
    """Per output axis: 'in' where the window lies inside the image, 'pad' where it sees only padding."""
    kinds = []
    for size, out, k, s, p, d in zip((h, w), (oh, ow), geom.kernel, geom.stride, geom.pad, geom.dilation):
        start = numpy.arange(out) * s - p
        end = start + d * (k - 1)
        inside = (start >= 0) & (end < size)
        # only padding: every tap (start + j*d) falls outside the image
        taps = start[:, None] + d * numpy.arange(k)[None, :]
        outside = ((taps < 0) | (taps >= size)).all(axis=1)
        kinds.append((inside, outside))
    return kinds


def forced_runs(strategy, cases=60):
    """(geometry, x, bias, y, scale) of each random case the strategy supports, y computed by it alone; scale
    bounds the sums' magnitudes (sum |w| |x| over a window), for tolerances in ulps."""
    rng = numpy.random.default_rng(2024)
    module = conv.strategy_module(strategy)
    for _ in range(cases):
        geom, x, w, b = random_case(rng)
        n, c, h, wd = x.shape
        oh, ow = geom.out_size(h, wd)
        if oh <= 0 or ow <= 0:
            continue
        y = numpy.full((n, w.shape[0], oh, ow), numpy.nan, dtype=numpy.float32)
        if module.supports("forward", geom, x, w, y):
            scale = float(numpy.abs(w).sum(axis=(1, 2, 3)).max() * numpy.abs(x).max() + numpy.abs(b).max())
            yield geom, x, b, conv.forward(x, w, b, y, geom, strategy), scale


def split(geom, x, y):
    """(outputs of windows inside the image (N, M, rows, cols), outputs of padding-only windows (N, M, count))."""
    (in_y, pad_y), (in_x, pad_x) = window_kinds(geom, *x.shape[2:], *y.shape[2:])
    margin = numpy.zeros(y.shape[2:], dtype=bool)
    margin[pad_y, :] = True
    margin[:, pad_x] = True
    return y[:, :, in_y][:, :, :, in_x], y[:, :, margin]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_padding_margin_is_exactly_the_bias(strategy):
    checked = 0
    for geom, x, b, y, scale in forced_runs(strategy):
        _, margin = split(geom, x, y)
        assert (margin == b.reshape(1, -1, 1)).all(), (strategy, geom)
        checked += 1
    assert checked >= 5, f"{strategy}: too few geometries ({checked})"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_equal_windows_give_outputs_equal_to_the_last_bits(strategy):
    for geom, x, b, y, scale in forced_runs(strategy):
        interior, _ = split(geom, x, y)
        if interior.size:
            ulps = numpy.abs(interior - interior[:, :, :1, :1]).max() / (scale * numpy.finfo(numpy.float32).eps)
            assert ulps <= 4, (strategy, geom, f"interior windows differ by {ulps:.1f} ulps of the sums' scale")


def test_equal_windows_give_bitwise_equal_outputs_without_blas():
    """Bitwise equality inside the image holds where each window is summed in one fixed order without BLAS
    (depthwise). For the BLAS strategies it is not asked: this machine's OpenBLAS rounds equal columns differently
    (test_blas_rounds_equal_columns_alike), so they are held to 4 ulps above, and the README says so."""
    for geom, x, b, y, scale in forced_runs("depthwise"):
        interior, _ = split(geom, x, y)
        if interior.size:
            assert (interior == interior[:, :, :1, :1]).all(), geom


def test_blas_rounds_equal_columns_alike():
    """This machine's sgemm, given equal columns, returns columns within 4 ulps of each other (bitwise equal only
    on some BLAS kernels: the count is printed, not required)."""
    rng = numpy.random.default_rng(0)
    unequal = 0
    for _ in range(50):
        m, k, n = (int(v) for v in (rng.integers(1, 20), rng.integers(1, 80), rng.integers(1, 40)))
        a = rng.normal(size=(m, k)).astype(numpy.float32)
        column = rng.normal(size=(k, 1)).astype(numpy.float32)
        c = a @ numpy.repeat(column, n, axis=1)
        unequal += not (c == c[:, :1]).all()
        scale = numpy.abs(a) @ numpy.abs(column)
        assert (numpy.abs(c - c[:, :1]) <= 4 * numpy.finfo(numpy.float32).eps * (scale + 1)).all()
    print(f"sgemm rounded equal columns differently in {unequal} of 50 products")
