"""CPU strategy "columns": blocked im2col + one BLAS GEMM per block of output rows, K = C*kh*kw.

The CPU's general case: any kernel, stride, pad and dilation. Blocks of output rows keep the column buffer in
cache and its size bounded (a whole-image im2col of FCN's conv1_2 at 500x500 would take 1.1 GB).
The columns are gathered tap by tap here; cells.py gathers them by blocks of whole cells instead, through the
`canvas` argument of these functions.

Supports and applies: any geometry on numpy arrays that BLAS takes (blas.handles)."""
import numpy

from layers.kernels import blas
from layers.kernels.blas import address, split_gemm
from layers.kernels.geometry import tap_range, touched
from layers.kernels.im2col import copy_tap
from layers.kernels.threads import POOL


def supports(op, geom, x, w, y):
    return blas.handles(x, w, y)


applies = supports


def forward(x, w, b, out, geom, canvas=None):
    """One group: out (N, M, OH, OW) = x * w + b. `canvas(x_shape, out_shape, geom, dtype)` makes the padded
    image the columns are gathered from (cells.py), or None: tap by tap from x."""
    wmat = numpy.ascontiguousarray(w.reshape(w.shape[0], -1))
    for i in range(x.shape[0]):
        col_conv(x[i], wmat, out[i], b, geom, canvas)


def data_grad(dy, w, dx, geom, canvas=None):
    """One group: dx (N, C, H, W) = the input gradient: a GEMM per block, then col2im."""
    wmat = numpy.ascontiguousarray(w.reshape(w.shape[0], -1))
    for i in range(dy.shape[0]):
        col_data_grad(dy[i], wmat, dx[i], geom, canvas)


def weight_grad(x, dy, dw, geom, canvas=None):
    """One group: dw (M, C, kh, kw) += the weight gradient (dw is C-contiguous)."""
    dwmat = dw.reshape(dw.shape[0], -1)
    for i in range(x.shape[0]):
        col_weight_grad(x[i], dy[i], dwmat, geom, canvas)


def col_block_rows(k, ow, oh, itemsize, budget=32 << 20):
    """Rows per im2col block: a column buffer of at most `budget` bytes (or one row)."""
    return max(1, min(oh, budget // (k * ow * itemsize)))


def col_rows(x, col, r0, n, geom, cells=None):
    """im2col of output rows r0..r0+n-1 into col (C, kh, kw, >=n, OW), from x or, when given, its canvas."""
    if cells is not None:
        return cells.gather(col, r0, n)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geom.kernel, geom.stride, geom.pad, geom.dilation
    for ky in range(kh):
        for kx in range(kw):
            copy_tap(x[None], col[None, :, ky, kx, :n], r0 * sh + ky * dh - ph, kx * dw - pw, sh, sw)


def _filled(canvas, x, out_shape, geom):
    """x (C, H, W) on a canvas, or None without one."""
    if canvas is None:
        return None
    cells = canvas(x.shape, out_shape, geom, x.dtype)
    cells.image[...] = x
    return cells


def col_conv(x, wmat, out, bias, geom, canvas=None):
    """Convolution of x (C, H, W) into out (M, OH, OW) with wmat (M, C*kh*kw): blocked im2col + GEMM."""
    c, h, w = x.shape
    m, oh, ow = out.shape
    k = wmat.shape[1]
    oy0, oy1 = touched(oh, h, geom.kernel[0], geom.stride[0], geom.pad[0], geom.dilation[0])
    if (oy0, oy1) != (0, oh):
        out[...] = 0 if bias is None else bias.reshape(-1, 1, 1)      # rows that see only padding
    rows = col_block_rows(k, ow, oy1 - oy0, x.itemsize)
    col = numpy.empty((c, *geom.kernel, rows, ow), dtype=x.dtype)
    cells = _filled(canvas, x, out.shape, geom)
    out2 = out.reshape(m, oh * ow)
    for r0 in range(oy0, oy1, rows):
        n = min(rows, oy1 - r0)
        col_rows(x, col, r0, n, geom, cells)
        split_gemm(x.dtype, m, n * ow, k, address(wmat), k, address(col), rows * ow, address(out2[:, r0 * ow:]),
                   oh * ow)
        if bias is not None:
            out[:, r0:r0 + n] += bias.reshape(-1, 1, 1)


def col_data_grad(dy, wmat, dx, geom, canvas=None):
    """dx (C, H, W) = the input gradient of a convolution with wmat (M, C*kh*kw): GEMM + blocked col2im."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geom.kernel, geom.stride, geom.pad, geom.dilation
    m, oh, ow = dy.shape
    c, h, w = dx.shape
    k = wmat.shape[1]
    rows = col_block_rows(k, ow, oh, dy.itemsize)
    dcol = numpy.empty((c, kh, kw, rows, ow), dtype=dy.dtype)
    dy2 = dy.reshape(m, oh * ow)
    cells = None if canvas is None else canvas(dx.shape, dy.shape, geom, dx.dtype)
    if cells is None:
        dx[...] = 0

    chunks = min(c, 2 * POOL.size)
    step = -(-c // chunks)

    def scatter(i, r0, n):         # columns of a slab of channels, added where they came from
        cs = slice(i * step, (i + 1) * step)
        if cells is not None:
            return cells.scatter(dcol, r0, n, cs)
        for ky in range(kh):
            y0, y1, iy = tap_range(r0 * sh + ky * dh - ph, sh, n, h)
            for kx in range(kw):
                x0, x1, ix = tap_range(kx * dw - pw, sw, ow, w)
                if y1 > y0 and x1 > x0:
                    dx[cs, iy:iy + (y1 - y0 - 1) * sh + 1:sh, ix:ix + (x1 - x0 - 1) * sw + 1:sw] += \
                        dcol[cs, ky, kx, y0:y1, x0:x1]

    for r0 in range(0, oh, rows):
        n = min(rows, oh - r0)
        split_gemm(dy.dtype, k, n * ow, m, address(wmat), k, address(dy2[:, r0 * ow:]), oh * ow, address(dcol),
                   rows * ow, trans_a=True)
        POOL.map(lambda i: scatter(i, r0, n), -(-c // step))    # slabs never overlap: no two threads add alike
    if cells is not None:
        dx[...] = cells.image


def col_weight_grad(x, dy, dwmat, geom, canvas=None):
    """dwmat (M, C*kh*kw) += the weight gradient: blocked im2col + GEMM."""
    c, h, w = x.shape
    m, oh, ow = dy.shape
    k = dwmat.shape[1]
    oy0, oy1 = touched(oh, h, geom.kernel[0], geom.stride[0], geom.pad[0], geom.dilation[0])
    rows = col_block_rows(k, ow, oy1 - oy0, x.itemsize)
    col = numpy.empty((c, *geom.kernel, rows, ow), dtype=x.dtype)
    cells = _filled(canvas, x, dy.shape, geom)
    dy2 = dy.reshape(m, oh * ow)
    for r0 in range(oy0, oy1, rows):
        n = min(rows, oy1 - r0)
        col_rows(x, col, r0, n, geom, cells)
        split_gemm(x.dtype, m, k, n * ow, address(dy2[:, r0 * ow:]), oh * ow, address(col), rows * ow,
                   address(dwmat), k, beta=True, trans_b=True)
