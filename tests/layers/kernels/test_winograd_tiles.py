"""Winograd F(m x m, 3 x 3) with BLAS transforms (layers/kernels/winograd_tiles.py): the blocked kernels against
their float64 twins and a direct im2col reference, over pads, odd sizes and block boundaries; the transforms'
exactness; the float32 error of each tile size against the golden tolerances; and equal windows giving
bitwise-equal outputs."""
import numpy
import pytest

from layers.kernels import conv, winograd_tiles as wt
from layers.kernels.geometry import ConvGeometry
from layers.kernels.threads import POOL

rng = numpy.random.default_rng(11)

CASES = [
    # (C, M, H, W, pad)
    (5, 7, 9, 11, (1, 1)),
    (3, 4, 6, 5, (0, 2)),
    (8, 6, 13, 10, (2, 1)),
    (16, 12, 3, 4, (1, 1)),       # fewer outputs than a tile
    (4, 3, 31, 29, (1, 1)),       # several blocks
]


def geometry(pad):
    return ConvGeometry((3, 3), (1, 1), pad, (1, 1), 1)


def direct(x, w, pad):
    """y of one image by the reference strategy (im2col_gemm), float64."""
    y = numpy.empty((1, w.shape[0], x.shape[1] + 2 * pad[0] - 2, x.shape[2] + 2 * pad[1] - 2))
    conv.forward(x[None], w, None, y, geometry(pad), "im2col_gemm")
    return y[0]


@pytest.mark.parametrize("m", sorted(wt.SCHEMES))
def test_scheme_is_a_convolution(m):
    at, g, bt = wt.matrices(m)
    d, k = rng.standard_normal(m + 2), rng.standard_normal(3)
    want = numpy.correlate(d, k, mode="valid")
    numpy.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", sorted(wt.SCHEMES))
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
@pytest.mark.parametrize("budget", [16 << 20, 8])     # one block, or many (one tile row each)
def test_blocked_matches_twin_and_direct(case, m, budget, monkeypatch):
    monkeypatch.setattr(wt, "BLOCK_BYTES", budget)
    monkeypatch.setattr(wt, "MIN_TILES", 1)
    c, mo, h, w, pad = case
    x, wgt = rng.standard_normal((c, h, w)), rng.standard_normal((mo, c, 3, 3))
    y = direct(x, wgt, pad)
    dy = rng.standard_normal(y.shape)
    dx = numpy.empty((1, c, h, w))
    conv.data_grad(dy[None], wgt, dx, geometry(pad), "im2col_gemm")
    dw = numpy.zeros_like(wgt)
    conv.weight_grad(x[None], dy[None], dw, geometry(pad), "im2col_gemm")
    numpy.testing.assert_allclose(wt.reference_forward(x, wgt, pad, m), y, rtol=1e-10, atol=1e-10)
    numpy.testing.assert_allclose(wt.reference_weight_grad(x, dy, pad, m), dw, rtol=1e-10, atol=1e-10)
    bias = rng.standard_normal(mo)
    with POOL:
        yb = wt.forward(x, wt.transform_weights(wgt, m), numpy.full(y.shape, numpy.nan), bias, pad, m)
        dxb = wt.data_grad(dy, wgt, numpy.full(x.shape, numpy.nan), pad, m)
        dwb = wt.weight_grad(x, dy, numpy.ones_like(wgt), pad, m) - 1        # accumulates
    numpy.testing.assert_allclose(yb, y + bias.reshape(-1, 1, 1), rtol=1e-10, atol=1e-10)
    numpy.testing.assert_allclose(dxb, dx[0], rtol=1e-10, atol=1e-10)
    numpy.testing.assert_allclose(dwb, dw, rtol=1e-10, atol=1e-10)


def golden_score(actual, expected, rtol, floor):
    """max err / tolerance as tests/golden.py's assert_close measures it (< 1 passes)."""
    err = numpy.abs(actual - expected)
    return (err / (floor * numpy.abs(expected).max() + rtol * numpy.abs(expected))).max()


@pytest.mark.parametrize("c, mo, size", [(64, 64, 40), (256, 256, 24), (512, 512, 16)])
def test_float32_error_within_golden_tolerances(c, mo, size):
    """F(2x2) stays within the forward tolerance (rtol 1e-5, floor 1e-6 x max); F(4x4), at its points, within
    the gradient one (rtol 1e-4, floor 1e-5 x max) for both gradients, with a margin of 2."""
    x = numpy.maximum(rng.standard_normal((c, size, size)), 0).astype(numpy.float32)        # post-ReLU
    w = (rng.standard_normal((mo, c, 3, 3)) * numpy.sqrt(2 / (9 * c))).astype(numpy.float32)
    dy = rng.standard_normal((mo, size, size)).astype(numpy.float32)
    x64, w64, dy64 = (a.astype(numpy.float64) for a in (x, w, dy))
    y64 = wt.reference_forward(x64, w64, (1, 1), 2)
    dx64 = wt.reference_forward(dy64, numpy.ascontiguousarray(w64[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), (1, 1), 2)
    dw64 = wt.reference_weight_grad(x64, dy64, (1, 1), 2)
    with POOL:
        y2 = wt.forward(x, wt.transform_weights(w, 2), numpy.empty(y64.shape, numpy.float32), None, (1, 1), 2)
        dx4 = wt.data_grad(dy, w, numpy.empty(x.shape, numpy.float32), (1, 1), 4)
        dw4 = wt.weight_grad(x, dy, numpy.zeros_like(w), (1, 1), 4)
    assert golden_score(y2, y64, 1e-5, 1e-6) < 0.5
    assert golden_score(dx4, dx64, 1e-4, 1e-5) < 0.5
    assert golden_score(dw4, dw64, 1e-4, 1e-5) < 0.5


def test_constant_tiles_give_equal_outputs():
    """F(2x2)'s transforms are exact on a constant tile (its coefficients are +-1 and 1/2; the in-order sums of
    BLAS stay at 0, c and 2c but for one component), so every output whose whole 4x4 input tile is constant is
    the same number in all four of its positions, bit for bit, and outputs whose windows are all padding are
    the bias exactly. (Across tiles, equal columns meet BLAS's main or edge micro-kernels, which may sum in
    another order, as for every GEMM lowering. Outputs whose window is constant but whose tile is not round
    differently: Winograd's result depends on the tile. F(4x4)'s 1/2 and 5/2 make even constant tiles round
    by position: it serves gradients only.)"""
    c, mo, h, w, pad = 32, 24, 37, 41, (2, 2)
    x = numpy.full((c, h, w), 0.37, numpy.float32)
    wgt = rng.standard_normal((mo, c, 3, 3)).astype(numpy.float32)
    bias = rng.standard_normal(mo).astype(numpy.float32)
    with POOL:
        y = wt.forward(x, wt.transform_weights(wgt, 2), numpy.empty((mo, h + 2, w + 2), numpy.float32), bias, pad, 2)
    inner = y[:, 2:36, 2:40].reshape(mo, 17, 2, 19, 2)      # tiles 1..17 x 1..19: input rows/columns inside x
    assert (inner == inner[:, :, :1, :, :1]).all()
    far = numpy.empty((mo, h + 8, w + 8), numpy.float32)
    with POOL:
        wt.forward(x, wt.transform_weights(wgt, 2), far, bias, (5, 5), 2)
    assert (far[:, :2] == bias[:, None, None]).all() and (far[:, :, -2:] == bias[:, None, None]).all()
