"""Every convolution strategy (layers/kernels/conv.STRATEGIES), forced one at a time, and the dispatch's own
choice, against a plain im2col + einsum reference in float64, over the geometries the strategies take: stride,
pad (also larger than the kernel, as FCN's pad 100), dilation, group, rectangular kernels, and block boundaries."""
import numpy
import pytest

from layers.kernels import blas, cells, columns, conv, taps, whole_batch, winograd, winograd_tiles
from layers.kernels.geometry import ConvGeometry
from layers.kernels.im2col import col2im, im2col

rng = numpy.random.default_rng(7)


def reference(x, w, b, stride, pad, dilation, group, dy):
    """(y, dx, dw) by whole-image im2col and einsum in float64."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    geom = ConvGeometry((kh, kw), stride, pad, dilation, group)
    col = im2col(x, geom)
    oh, ow = col.shape[-2:]
    col = col.reshape(n, group, cg * kh * kw, oh * ow)
    wg = w.reshape(group, m // group, -1)
    y = numpy.einsum("gmk,ngkp->ngmp", wg, col).reshape(n, m, oh, ow) + b.reshape(1, -1, 1, 1)
    dyg = dy.reshape(n, group, m // group, oh * ow)
    dw = numpy.einsum("ngmp,ngkp->gmk", dyg, col).reshape(w.shape)
    dcol = numpy.einsum("gmk,ngmp->ngkp", wg, dyg).reshape(n, c, kh, kw, oh, ow)
    dx = col2im(dcol, h, wd, geom)
    return y, dx, dw


CASES = [
    # (N, C, H, W, M, kernel, stride, pad, dilation, group)
    (1, 32, 9, 11, 24, (3, 3), (1, 1), (1, 1), (1, 1), 1),      # tap lowering, FCN's 3x3 pad 1
    (2, 16, 7, 13, 20, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (1, 3, 5, 7, 16, (3, 3), (1, 1), (30, 30), (1, 1), 1),     # col lowering, pad far beyond the kernel
    (1, 24, 5, 6, 8, (3, 3), (1, 1), (9, 9), (1, 1), 1),       # tap lowering with a pad of 9
    (1, 16, 5, 6, 16, (3, 3), (1, 1), (9, 9), (1, 1), 1),      # ... and its input gradient by taps too
    (1, 32, 12, 40, 16, (3, 5), (1, 1), (1, 2), (1, 1), 1),    # rectangular kernel
    (1, 32, 11, 40, 16, (3, 3), (1, 1), (2, 2), (2, 2), 1),    # dilation
    (2, 32, 10, 40, 16, (3, 3), (1, 1), (1, 1), (1, 1), 2),    # groups
    (1, 16, 13, 12, 12, (3, 3), (2, 2), (1, 1), (1, 1), 1),    # stride: col lowering
    (1, 8, 9, 11, 10, (7, 7), (1, 1), (0, 0), (1, 1), 1),      # fc6-style 7x7, no pad
    (2, 16, 6, 7, 12, (1, 1), (1, 1), (0, 0), (1, 1), 1),      # pointwise
    (1, 9, 19, 23, 21, (5, 5), (3, 3), (2, 2), (1, 1), 3),     # stride 3, group 3
    (1, 20, 4, 3, 6, (3, 3), (1, 1), (0, 0), (1, 1), 1),       # output smaller than the kernel
    # the stride divides the kernel: blocks of whole cells (FCN's upsampling k4 s2, k16 s8, k64 s32)
    (1, 5, 10, 9, 4, (4, 4), (2, 2), (1, 1), (1, 1), 1),
    (2, 3, 40, 36, 3, (16, 16), (8, 8), (0, 0), (1, 1), 1),
    (1, 2, 70, 66, 3, (64, 64), (32, 32), (3, 5), (1, 1), 1),   # the last rows see no window: zero gradient
    (1, 4, 11, 7, 6, (4, 3), (2, 3), (7, 0), (1, 1), 2),       # rectangular, pad beyond the kernel, groups
    (1, 3, 9, 9, 2, (4, 4), (2, 2), (1, 1), (2, 2), 1),        # dilated: not in cells
]


CPU = [name for name in conv.STRATEGIES if name != "winograd_gpu"]       # the reference included


def tiny_blocks(monkeypatch):
    """Tiny blocks, so that every block boundary (and the last partial block) is exercised."""
    monkeypatch.setattr(taps, "block_rows", lambda cols, mm, size, total, **kw: max(1, min(total, 2)))
    monkeypatch.setattr(columns, "col_block_rows", lambda k, ow, oh, size, **kw: max(1, min(oh, 2)))
    monkeypatch.setattr(blas, "MIN_SLAB", 3)              # GEMMs split in slabs between threads
    monkeypatch.setattr(winograd, "_WINOGRAD_TILES", 1)   # one row of tiles per block
    monkeypatch.setattr(winograd_tiles, "BLOCK_BYTES", 1)  # ... in the gradients' F(4x4) too
    monkeypatch.setattr(winograd_tiles, "MIN_TILES", 1)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("strategy", ["dispatch"] + CPU)
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_strategies_match_reference(case, strategy, dtype, monkeypatch):
    """Each operation a strategy supports, forced (also where it would not pay), and the dispatch's choice."""
    n, c, h, wd, m, kernel, stride, pad, dilation, group = case
    tiny_blocks(monkeypatch)
    geom = ConvGeometry(kernel, stride, pad, dilation, group)
    x = rng.normal(size=(n, c, h, wd))
    w = rng.normal(size=(m, c // group) + kernel)
    b = rng.normal(size=m)
    oh, ow = geom.out_size(h, wd)
    dy = rng.normal(size=(n, m, oh, ow))
    y_ref, dx_ref, dw_ref = reference(x, w, b, stride, pad, dilation, group, dy)
    x, w, b, dy = [a.astype(dtype) for a in (x, w, b, dy)]
    y = numpy.full((n, m, oh, ow), numpy.nan, dtype=dtype)
    dx = numpy.full(x.shape, numpy.nan, dtype=dtype)
    dw = numpy.ones(w.shape, dtype=dtype)                 # the weight gradient accumulates onto what is there
    forced = None if strategy == "dispatch" else conv.strategy_module(strategy)
    ran = 0
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == numpy.float64 else dict(rtol=1e-4, atol=1e-4)
    name = None if forced is None else strategy
    if forced is None or forced.supports("forward", geom, x, w, y):
        numpy.testing.assert_allclose(conv.forward(x, w, b, y, geom, name), y_ref, **tol)
        ran += 1
    if forced is None or forced.supports("data_grad", geom, dx, w, dy):
        numpy.testing.assert_allclose(conv.data_grad(dy, w, dx, geom, name), dx_ref, **tol)
        ran += 1
    if forced is None or forced.supports("weight_grad", geom, x, dw, dy):
        numpy.testing.assert_allclose(conv.weight_grad(x, dy, dw, geom, name), dw_ref + 1, **tol)
        ran += 1
    if not ran:
        pytest.skip(f"{strategy} does not support this geometry")


def test_forcing_a_strategy_that_cannot_says_so():
    geom = ConvGeometry((3, 3), (2, 2))
    x, w, y = numpy.zeros((1, 2, 7, 7)), numpy.zeros((2, 2, 3, 3)), numpy.zeros((1, 2, 3, 3))
    with pytest.raises(ValueError, match="'taps' does not support forward"):
        conv.forward(x, w, None, y, geom, "taps")
    with pytest.raises(ValueError, match="unknown convolution strategy 'fast'"):
        conv.forward(x, w, None, y, geom, "fast")


def test_each_strategy_is_chosen_where_it_pays():
    assert winograd.uses_winograd((3, 3), (1, 1), (1, 1), 256, 256, 175, 175)      # FCN's conv3_x at 500x500
    assert not winograd.uses_winograd((3, 3), (1, 1), (1, 1), 64, 64, 698, 698)    # conv1_2: taps
    assert winograd.uses_winograd((3, 3), (1, 1), (1, 1), 512, 512, 44, 44)        # conv5_x at 500x500
    assert not winograd.uses_winograd((3, 3), (1, 1), (1, 1), 512, 512, 29, 29)    # ... at 256x256: taps
    assert winograd.uses_winograd_grads(64, 64, 698, 698)                          # F(4x4) gradients: conv1_2
    assert not winograd.uses_winograd_grads(3, 64, 698, 698)                       # not conv1_1
    assert not winograd.uses_winograd_grads(512, 512, 15, 15)
    assert taps.uses_taps(32, 11, 3, (1, 1), 1)
    assert not taps.uses_taps(3, 300, 3, (1, 1), 1)          # K = 3 is too thin for a GEMM per tap
    assert not taps.uses_taps(32, 11, 3, (2, 2), 1)          # strided: im2col
    assert not taps.uses_taps(512, 16, 7, (1, 1), 1)         # fc6: 6 wasted columns of 22
    assert cells.uses_cells((64, 64), (32, 32), (1, 1))        # FCN-32s upsampling
    assert cells.uses_cells((4, 3), (2, 3), (1, 1))
    assert not cells.uses_cells((3, 3), (2, 2), (1, 1))        # VGG-free strided 3x3: taps one by one
    assert not cells.uses_cells((4, 4), (2, 2), (2, 2))        # dilated
    assert not cells.uses_cells((3, 3), (1, 1), (1, 1))        # stride 1: a cell is a tap
    assert whole_batch.batched(32, 64 * 9, 9 * 9, (3, 3), 4)          # a classifier's conv4 on 72 x 72 crops
    assert not whole_batch.batched(1, 64 * 9, 9 * 9, (3, 3), 4)       # one image: nothing to batch
    assert not whole_batch.batched(8, 3 * 9, 162 * 162, (3, 3), 4)    # large images: per image
    assert not whole_batch.batched(8, 7 * 4096, 25, (64, 64), 4)      # FCN-32s upsampling: cells, per image


def test_gemm_honours_row_strides_and_accumulates():
    a = rng.normal(size=(6, 9)).astype(numpy.float32)
    b = rng.normal(size=(5, 12)).astype(numpy.float32)
    c = numpy.ones((4, 7), dtype=numpy.float32)
    blas.gemm(a[1:5, 2:7], b[:, 3:10], c, beta=True)
    numpy.testing.assert_allclose(c, 1 + a[1:5, 2:7] @ b[:, 3:10], rtol=1e-5)
    blas.gemm(a[:5, :4], b[:, :7], c, trans_a=True)
    numpy.testing.assert_allclose(c, a[:5, :4].T @ b[:, :7], rtol=1e-5)
