"""CPU strategy "taps": a stride-1 convolution as one GEMM per kernel tap, no im2col copy.

A block of input rows is zero-padded once, W_b = OW + extent - 1 wide; each kernel tap is then one GEMM over a
shifted slice of that block, accumulated with beta = 1. Each output row is computed W_b wide and the extra
(wrapped-around) columns are dropped. The input gradient is the convolution of dy with the flipped, transposed
kernel, so it runs the same way.

Supports: stride 1 (any kernel, pad, dilation), all three operations.
Applies (is worth it): a tap GEMM has K = input channels, thin below ~16; and the W_b - OW wrapped columns per row
are wasted work, so only where they are at most a quarter of the row."""
import numpy

from layers.kernels import blas
from layers.kernels.blas import Gemm, address
from layers.kernels.geometry import touched
from layers.kernels.threads import BLAS_THREADS, POOL, PerThread


def uses_taps(c_in, out_w, kernel_w, stride, dilation_w):
    """Whether taps pay: K = c_in thick enough, and few wrapped columns."""
    return stride == (1, 1) and c_in >= 16 and out_w + dilation_w * (kernel_w - 1) <= 1.25 * out_w


def supports(op, geom, x, w, y):
    return geom.stride == (1, 1) and blas.handles(x, w, y)


def applies(op, geom, x, w, y):
    if not supports(op, geom, x, w, y):
        return False
    cg, mg = w.shape[1], w.shape[0] // geom.group
    if op == "data_grad":          # a convolution of dy (M channels) onto dx's width
        return uses_taps(mg, x.shape[3], geom.kernel[1], geom.stride, geom.dilation[1])
    return uses_taps(cg, y.shape[3], geom.kernel[1], geom.stride, geom.dilation[1])


def forward(x, w, b, out, geom):
    """One group: out (N, M, OH, OW) = x (N, C, H, W) * w (M, C, kh, kw) + b."""
    m, c = w.shape[:2]
    taps = numpy.ascontiguousarray(w.transpose(2, 3, 0, 1)).reshape(-1, m, c)
    for i in range(x.shape[0]):
        tap_conv(x[i], taps, out[i], b, geom.kernel, geom.pad, geom.dilation)


def data_grad(dy, w, dx, geom):
    """One group: dx = the convolution of dy with the flipped, transposed kernel (stride 1)."""
    m, c = w.shape[:2]
    taps = numpy.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(2, 3, 1, 0)).reshape(-1, c, m)
    for i in range(dy.shape[0]):
        tap_conv(dy[i], taps, dx[i], None, geom.kernel, geom.flipped_pad, geom.dilation)


def weight_grad(x, dy, dw, geom):
    """One group: dw += the weight gradient, accumulated per tap then added in Caffe's layout."""
    m, c = dw.shape[:2]
    dtaps = numpy.zeros((geom.taps, m, c), dtype=x.dtype)
    for i in range(x.shape[0]):
        tap_weight_grad(x[i], dy[i], dtaps, geom.kernel, geom.pad, geom.dilation)
    dw += dtaps.reshape(*geom.kernel, m, c).transpose(2, 3, 0, 1)


def block_rows(cols_per_row, m, itemsize, total_rows, scratch_bytes=1 << 20, min_cols=1024):
    """Rows per block: an (m x rows*cols) output block of about `scratch_bytes`, but GEMMs min_cols wide.
    Where BLAS keeps its own threads, each call costs a wake-up of them: then fewer, larger blocks."""
    if BLAS_THREADS is None:
        scratch_bytes *= 16
    cols = max(min_cols, scratch_bytes // (itemsize * max(m, 1)))
    return max(1, min(total_rows, cols // max(cols_per_row, 1)))


class Rows:
    """A zero-padded block of input rows, channel planes `plane` elements apart (+ a tail for wrapped reads)."""

    def __init__(self, c, rows, width, tail, dtype):
        self.width = width
        self.plane = rows * width
        self.flat = numpy.zeros(c * self.plane + tail, dtype=dtype)
        self.grid = self.flat[:c * self.plane].reshape(c, rows, width)
        self.address = address(self.flat)

    def fill(self, x, y0, nrows, x0):
        """Input rows y0..y0+nrows-1, columns x0..x0+width-1 (zero outside x) into the top of the block."""
        h, w = x.shape[1:]
        a, b = max(y0, 0), min(y0 + nrows, h)
        c0, c1 = max(x0, 0), min(x0 + self.width, w)
        g = self.grid
        if b <= a or c1 <= c0:
            g[:, :nrows] = 0
            return
        if a > y0:
            g[:, :a - y0] = 0
        if b < y0 + nrows:
            g[:, b - y0:nrows] = 0
        # columns outside [c0, c1) are never written, so they keep the zeros they were allocated with
        g[:, a - y0:b - y0, c0 - x0:c1 - x0] = x[:, a:b, c0:c1]


def tap_conv(x, taps, out, bias, kernel, pad, dilation):
    """Stride-1 convolution of x (C, H, W) into out (M, OH, OW) with taps (kh*kw, M, C): a GEMM per tap."""
    (kh, kw), (ph, pw), (dh, dw) = kernel, pad, dilation
    c, h, w = x.shape
    m, oh, ow = out.shape
    oy0, oy1 = touched(oh, h, kh, 1, ph, dh)
    ox0, ox1 = touched(ow, w, kw, 1, pw, dw)
    if (oy0, oy1, ox0, ox1) != (0, oh, 0, ow):
        out[...] = 0 if bias is None else bias.reshape(-1, 1, 1)      # windows entirely in the padding
    if oy1 <= oy0 or ox1 <= ox0:
        return
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    cols = ox1 - ox0
    wb = cols + ew - 1
    size = x.itemsize
    rows = block_rows(wb, m, size, -(-(oy1 - oy0) // POOL.size))
    scratch = PerThread(lambda: (Rows(c, rows + eh - 1, wb, ew - 1, x.dtype),
                                 numpy.empty((m, rows * wb), dtype=x.dtype), Gemm(x.dtype)))
    taps_at = address(taps)
    bias3 = None if bias is None else bias.reshape(-1, 1, 1)

    def block(i):
        block, ybuf, gemm_ = scratch.get()
        r0 = oy0 + i * rows
        n = min(rows, oy1 - r0)
        block.fill(x, r0 - ph, n + eh - 1, ox0 - pw)
        y_at = address(ybuf)
        for t in range(kh * kw):
            ky, kx = divmod(t, kw)
            at = block.address + (ky * dh * wb + kx * dw) * size
            gemm_(m, n * wb, c, taps_at + t * m * c * size, c, at, block.plane, y_at, rows * wb, beta=t > 0)
        y = ybuf[:, :n * wb].reshape(m, n, wb)[:, :, :cols]
        dst = out[:, r0:r0 + n, ox0:ox1]
        if bias3 is None:
            dst[...] = y
        else:
            numpy.add(y, bias3, out=dst)

    POOL.map(block, -(-(oy1 - oy0) // rows))


def tap_weight_grad(x, dy, dtaps, kernel, pad, dilation):
    """dtaps (kh*kw, M, C) += the weight gradient of the stride-1 convolution of x (C, H, W) -> dy (M, OH, OW)."""
    (kh, kw), (ph, pw), (dh, dw) = kernel, pad, dilation
    c, h, w = x.shape
    m, oh, ow = dy.shape
    oy0, oy1 = touched(oh, h, kh, 1, ph, dh)           # the other outputs see only zeros: no weight gradient
    ox0, ox1 = touched(ow, w, kw, 1, pw, dw)
    if oy1 <= oy0 or ox1 <= ox0:
        return
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    cols = ox1 - ox0
    wb = cols + ew - 1
    size = x.itemsize
    rows = block_rows(wb, max(m, c), size, -(-(oy1 - oy0) // POOL.size))
    # per thread: the input rows, the output gradient rows (the wrapped columns stay 0, so they add nothing)
    # and a gradient accumulator, summed at the end
    scratch = PerThread(lambda: (Rows(c, rows + eh - 1, wb, ew - 1, x.dtype),
                                 numpy.zeros((m, rows * wb), dtype=x.dtype),
                                 numpy.zeros(dtaps.shape, dtype=x.dtype), Gemm(x.dtype)))

    def block(i):
        block, dybuf, acc, gemm_ = scratch.get()
        r0 = oy0 + i * rows
        n = min(rows, oy1 - r0)
        block.fill(x, r0 - ph, n + eh - 1, ox0 - pw)
        dybuf[:, :n * wb].reshape(m, n, wb)[:, :, :cols] = dy[:, r0:r0 + n, ox0:ox1]
        d_at, acc_at = address(dybuf), address(acc)
        for t in range(kh * kw):
            ky, kx = divmod(t, kw)
            at = block.address + (ky * dh * wb + kx * dw) * size
            gemm_(m, c, n * wb, d_at, rows * wb, at, block.plane, acc_at + t * m * c * size, c,
                  beta=True, trans_b=True)

    POOL.map(block, -(-(oy1 - oy0) // rows))
    for _, _, acc, _ in scratch.values():
        dtaps += acc
