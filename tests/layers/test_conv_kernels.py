"""The CPU convolution kernels (layers/im2col.py: tap and blocked-im2col lowerings) against a plain im2col +
einsum reference, over the geometries each lowering takes: stride, pad (also larger than the kernel, as FCN's
pad 100), dilation, group, rectangular kernels, and the block boundaries."""
import numpy
import pytest

from layers import im2col as kernels
from layers.im2col import col2im, conv_data_grad_cpu, conv_forward_cpu, conv_outsize, conv_weight_grad_cpu, im2col

rng = numpy.random.default_rng(7)


def reference(x, w, b, stride, pad, dilation, group, dy):
    """(y, dx, dw) by whole-image im2col and einsum in float64."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    col = im2col(x, kh, kw, *stride, *pad, *dilation)
    oh, ow = col.shape[-2:]
    col = col.reshape(n, group, cg * kh * kw, oh * ow)
    wg = w.reshape(group, m // group, -1)
    y = numpy.einsum("gmk,ngkp->ngmp", wg, col).reshape(n, m, oh, ow) + b.reshape(1, -1, 1, 1)
    dyg = dy.reshape(n, group, m // group, oh * ow)
    dw = numpy.einsum("ngmp,ngkp->gmk", dyg, col).reshape(w.shape)
    dcol = numpy.einsum("gmk,ngmp->ngkp", wg, dyg).reshape(n, c, kh, kw, oh, ow)
    dx = col2im(dcol, h, wd, *stride, *pad, *dilation)
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


def winograd_anywhere(kernel, stride, dilation, *sizes):
    return kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("mode", ["default", "per-image", "winograd", "batched"])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_kernels_match_reference(case, mode, dtype, monkeypatch):
    """default: the dispatch as it is; per-image: each image lowered alone (taps, Winograd where it pays, or
    blocked im2col); winograd: per image, Winograd wherever it applies; batched: the whole batch lowered at once."""
    n, c, h, wd, m, kernel, stride, pad, dilation, group = case
    winograd = mode == "winograd"
    if winograd and not winograd_anywhere(kernel, stride, dilation):
        pytest.skip("Winograd F(2x2, 3x3) takes 3x3 stride-1 kernels only")
    if mode != "default":
        monkeypatch.setattr(kernels, "_batched", lambda *args, **kw: mode == "batched")
    # tiny blocks, so that every block boundary (and the last partial block) is exercised
    monkeypatch.setattr(kernels, "_block_rows", lambda cols, mm, size, total, **kw: max(1, min(total, 2)))
    monkeypatch.setattr(kernels, "_col_block_rows", lambda k, ow, oh, size, **kw: max(1, min(oh, 2)))
    monkeypatch.setattr(kernels, "_MIN_SLAB", 3)         # GEMMs split in slabs between threads
    monkeypatch.setattr(kernels, "_WINOGRAD_TILES", 1)   # one row of tiles per block
    if winograd:                                         # also where it would not pay: small channel counts
        monkeypatch.setattr(kernels, "_uses_winograd", winograd_anywhere)
    x = rng.normal(size=(n, c, h, wd))
    w = rng.normal(size=(m, c // group) + kernel)
    b = rng.normal(size=m)
    oh = conv_outsize(h, kernel[0], stride[0], pad[0], dilation[0])
    ow = conv_outsize(wd, kernel[1], stride[1], pad[1], dilation[1])
    dy = rng.normal(size=(n, m, oh, ow))
    y_ref, dx_ref, dw_ref = reference(x, w, b, stride, pad, dilation, group, dy)
    cast = [a.astype(dtype) for a in (x, w, b, dy)]
    x, w, b, dy = cast
    geometry = dict(stride=stride, pad=pad, dilation=dilation, group=group)
    y = numpy.full((n, m, oh, ow), numpy.nan, dtype=dtype)
    conv_forward_cpu(x, w, b, y, **geometry)
    dx = numpy.full(x.shape, numpy.nan, dtype=dtype)
    conv_data_grad_cpu(dy, w, dx, **geometry)
    dw = numpy.ones(w.shape, dtype=dtype)                 # the weight gradient accumulates onto what is there
    conv_weight_grad_cpu(x, dy, dw, **geometry)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == numpy.float64 else dict(rtol=1e-4, atol=1e-4)
    numpy.testing.assert_allclose(y, y_ref, **tol)
    numpy.testing.assert_allclose(dx, dx_ref, **tol)
    numpy.testing.assert_allclose(dw, dw_ref + 1, **tol)
    assert y.dtype == dx.dtype == dw.dtype == dtype


def test_each_lowering_is_exercised():
    assert kernels._uses_winograd((3, 3), (1, 1), (1, 1), 256, 256, 175, 175)      # FCN's conv3_x at 500x500
    assert not kernels._uses_winograd((3, 3), (1, 1), (1, 1), 64, 64, 698, 698)    # conv1_2: taps
    assert not kernels._uses_winograd((3, 3), (1, 1), (1, 1), 512, 512, 44, 44)    # conv5_x: taps
    assert kernels._uses_taps(32, 11, 3, (1, 1), 1)
    assert not kernels._uses_taps(3, 300, 3, (1, 1), 1)          # K = 3 is too thin for a GEMM per tap
    assert not kernels._uses_taps(32, 11, 3, (2, 2), 1)          # strided: im2col
    assert not kernels._uses_taps(512, 16, 7, (1, 1), 1)         # fc6: 6 wasted columns of 22
    assert kernels._uses_cells((64, 64), (32, 32), (1, 1))        # FCN-32s upsampling
    assert kernels._uses_cells((4, 3), (2, 3), (1, 1))
    assert not kernels._uses_cells((3, 3), (2, 2), (1, 1))        # VGG-free strided 3x3: taps one by one
    assert not kernels._uses_cells((4, 4), (2, 2), (2, 2))        # dilated
    assert not kernels._uses_cells((3, 3), (1, 1), (1, 1))        # stride 1: a cell is a tap
    assert kernels._batched(32, 64 * 9, 9 * 9, (3, 3), 4)          # a classifier's conv4 on 72 x 72 crops
    assert not kernels._batched(1, 64 * 9, 9 * 9, (3, 3), 4)       # one image: nothing to batch
    assert not kernels._batched(8, 3 * 9, 162 * 162, (3, 3), 4)    # large images: per image
    assert not kernels._batched(8, 7 * 4096, 25, (64, 64), 4)      # FCN-32s upsampling: cells, per image


def test_gemm_honours_row_strides_and_accumulates():
    a = rng.normal(size=(6, 9)).astype(numpy.float32)
    b = rng.normal(size=(5, 12)).astype(numpy.float32)
    c = numpy.ones((4, 7), dtype=numpy.float32)
    kernels.gemm(a[1:5, 2:7], b[:, 3:10], c, beta=True)
    numpy.testing.assert_allclose(c, 1 + a[1:5, 2:7] @ b[:, 3:10], rtol=1e-5)
    kernels.gemm(a[:5, :4], b[:, :7], c, trans_a=True)
    numpy.testing.assert_allclose(c, a[:5, :4].T @ b[:, :7], rtol=1e-5)
