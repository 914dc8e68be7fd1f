"""CPU strategy "pointwise": a 1x1, stride-1, unpadded convolution is one GEMM per image on the input as it is
(the input is already its own column matrix; Caffe's is_1x1_).

Supports and applies: geom.is_pointwise; all three operations."""
from layers.kernels import blas
from layers.kernels.blas import address, split_gemm


def supports(op, geom, x, w, y):
    return geom.is_pointwise and blas.handles(x, w, y)


applies = supports


def forward(x, w, b, out, geom):
    """One group: out (N, M, H, W) = w (M, C) @ x (C, H*W) per image, + b."""
    n, c, h, wd = x.shape
    m = w.shape[0]
    for i in range(n):
        split_gemm(x.dtype, m, h * wd, c, address(w), c, address(x[i]), h * wd, address(out[i]), h * wd)
        if b is not None:
            out[i] += b.reshape(-1, 1, 1)


def data_grad(dy, w, dx, geom):
    """One group: dx = w^T @ dy per image."""
    n, m, h, wd = dy.shape
    c = w.shape[1]
    for i in range(n):
        split_gemm(dy.dtype, c, h * wd, m, address(w), c, address(dy[i]), h * wd, address(dx[i]), h * wd,
                   trans_a=True)


def weight_grad(x, dy, dw, geom):
    """One group: dw += dy @ x^T per image."""
    n, c, h, wd = x.shape
    m = dy.shape[1]
    for i in range(n):
        split_gemm(x.dtype, m, c, h * wd, address(dy[i]), h * wd, address(x[i]), h * wd, address(dw), c,
                   beta=True, trans_b=True)
