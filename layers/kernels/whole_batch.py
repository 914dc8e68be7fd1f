"""CPU strategy "whole_batch": the whole batch lowered at once, one im2col and one GEMM for all images.

For many small images, whose per-image GEMMs are so narrow that per-call costs dominate (a classifier's late
layers). The columns are (C*kh*kw, N*OH*OW): im2col on the batch seen channel first.

Supports: any geometry, all three operations.
Applies (is worth it): more than one image, small outputs, few taps (its col2im moves them one by one), and a
column matrix within 64 MB (see batched)."""
import numpy

from layers.kernels import blas
from layers.kernels.blas import address, split_gemm
from layers.kernels.im2col import col2im, im2col


def batched(n, k, out_size, kernel, itemsize, budget=64 << 20):
    """Whether to lower the whole batch at once: n images, K = k, out_size outputs per map."""
    return n > 1 and out_size <= 2048 and kernel[0] * kernel[1] <= 49 and n * k * out_size * itemsize <= budget


def supports(op, geom, x, w, y):
    return blas.handles(x, w, y)


def applies(op, geom, x, w, y):
    return supports(op, geom, x, w, y) and batched(x.shape[0], w.shape[1] * geom.taps, y.shape[2] * y.shape[3],
                                                    geom.kernel, x.itemsize)


def _columns(x, geom, oh, ow):
    """im2col of the whole batch x (N, C, H, W): a (C*kh*kw, N*OH*OW) matrix (written through a view)."""
    n, c = x.shape[:2]
    col = numpy.empty((c, *geom.kernel, n, oh, ow), dtype=x.dtype)
    im2col(x.transpose(1, 0, 2, 3), geom, out=col.transpose(0, 3, 1, 2, 4, 5))
    return col.reshape(-1, n * oh * ow)


def _by_channel(a):
    """(N, C, H, W) -> the (C, N*H*W) matrix, copied."""
    n, c = a.shape[:2]
    return numpy.ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(c, -1)


def forward(x, w, b, out, geom):
    """One group: out (N, M, OH, OW) = x * w + b: one im2col, one GEMM."""
    n, m, oh, ow = out.shape
    wmat = numpy.ascontiguousarray(w.reshape(m, -1))
    col = _columns(x, geom, oh, ow)
    y = numpy.empty((m, n * oh * ow), dtype=x.dtype)
    k = col.shape[0]
    split_gemm(x.dtype, m, y.shape[1], k, address(wmat), k, address(col), y.shape[1], address(y), y.shape[1])
    y = y.reshape(m, n, oh, ow).transpose(1, 0, 2, 3)
    if b is None:
        out[...] = y
    else:
        numpy.add(y, b.reshape(-1, 1, 1), out=out)


def data_grad(dy, w, dx, geom):
    """One group: dx (N, C, H, W) = the input gradient: one GEMM, then col2im tap by tap."""
    kh, kw = geom.kernel
    n, m, oh, ow = dy.shape
    c, h, wd = dx.shape[1:]
    wmat = numpy.ascontiguousarray(w.reshape(m, -1))
    dy2 = _by_channel(dy)
    k = wmat.shape[1]
    dcol = numpy.empty((k, dy2.shape[1]), dtype=dy.dtype)
    split_gemm(dy.dtype, k, dy2.shape[1], m, address(wmat), k, address(dy2), dy2.shape[1], address(dcol),
               dcol.shape[1], trans_a=True)
    # col2im on the batch seen channel first: (C, N, kh, kw, OH, OW) -> (C, N, H, W)
    grad = col2im(dcol.reshape(c, kh, kw, n, oh, ow).transpose(0, 3, 1, 2, 4, 5), h, wd, geom)
    dx[...] = grad.transpose(1, 0, 2, 3)


def weight_grad(x, dy, dw, geom):
    """One group: dw (M, C, kh, kw) += the weight gradient over the whole batch: one im2col, one GEMM."""
    n, m, oh, ow = dy.shape
    col = _columns(x, geom, oh, ow)
    dy2 = _by_channel(dy)
    k = col.shape[0]
    split_gemm(x.dtype, m, k, dy2.shape[1], address(dy2), dy2.shape[1], address(col), col.shape[1],
               address(dw.reshape(m, -1)), k, beta=True, trans_b=True)
