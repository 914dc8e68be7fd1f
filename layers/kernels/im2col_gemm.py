"""THE reference strategy, "im2col_gemm": im2col, then one batched matrix product per group, on any array module
(numpy or CuPy) and any dtype. It is the GPU's general path and the path every other strategy is tested against.

Supports and applies: everything (it is last in the dispatch's list). It handles all groups in one product
(ALL_GROUPS), so a grouped layer costs one batched GEMM on the GPU, not one per group."""
from layers import backend
from layers.kernels.im2col import col2im, im2col

ALL_GROUPS = True


def supports(op, geom, x, w, y):
    return True


applies = supports


def columns(x, geom):
    """The im2col matrix as (N, G, C/G*kh*kw, OH*OW); a pointwise convolution needs no copy."""
    n, c, h, w = x.shape
    g = geom.group
    if geom.is_pointwise:
        return x.reshape(n, g, c // g, h * w)
    return im2col(x, geom).reshape(n, g, (c // g) * geom.taps, -1)


def forward(x, w, b, out, geom):
    """out (N, M, OH, OW) = x * w (+ b)."""
    xp = backend.get_array_module(x)
    g = geom.group
    col = columns(x, geom)
    xp.matmul(w.reshape(g, w.shape[0] // g, -1)[None], col, out=out.reshape(col.shape[0], g, -1, col.shape[3]))
    if b is not None:
        out += b.reshape(1, -1, 1, 1)


def data_grad(dy, w, dx, geom):
    """dx (N, C, H, W) = the input gradient: W^T dy per group, then col2im."""
    xp = backend.get_array_module(dy)
    g = geom.group
    n, m = dy.shape[:2]
    dcol = xp.matmul(w.reshape(g, m // g, -1).transpose(0, 2, 1)[None], dy.reshape(n, g, m // g, -1))
    if geom.is_pointwise:
        dx[...] = dcol.reshape(dx.shape)
    else:
        col2im(dcol.reshape(n, dx.shape[1], *geom.kernel, *dy.shape[2:]), *dx.shape[2:], geom, out=dx)


def weight_grad(x, dy, dw, geom):
    """dw (M, C/G, kh, kw) += the weight gradient, summed over the batch."""
    xp = backend.get_array_module(x)
    g = geom.group
    n, m = dy.shape[:2]
    col = columns(x, geom)
    dw += xp.matmul(dy.reshape(n, g, m // g, -1), col.transpose(0, 1, 3, 2)).sum(axis=0).reshape(dw.shape)
