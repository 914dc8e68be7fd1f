"""im2col/col2im: the column lowering of a convolution (cf. chainer/utils/conv.py), as numpy code that works on
any array module and as one CUDA kernel each. The numpy versions are the twins (and test oracles) of the kernels.

Columns are laid out (N, C, kh, kw, OH, OW) so that a convolution is one matrix product per group:
W (M, C*kh*kw) x col (C*kh*kw, OH*OW) (im2col_gemm.py)."""
from layers import backend
from layers.kernels.geometry import tap_range


def im2col(x, geom, out=None):
    """(N, C, H, W) -> (N, C, kh, kw, OH, OW): for each kernel tap, the strided input it meets."""
    if backend.is_gpu(x):
        return im2col_gpu(x, geom, out)
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geom.kernel, geom.stride, geom.pad, geom.dilation
    oh, ow = geom.out_size(h, w)
    if out is None:
        out = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            copy_tap(x, out[:, :, ky, kx], ky * dh - ph, kx * dw - pw, sh, sw)
    return out


def copy_tap(x, dst, oy, ox, sh, sw):
    """dst (N, C, OH, OW) = the input x (N, C, H, W) one tap meets, its window corner offset by (oy, ox)."""
    h, w = x.shape[2:]
    oh, ow = dst.shape[2:]
    y0, y1, iy = tap_range(oy, sh, oh, h)
    x0, x1, ix = tap_range(ox, sw, ow, w)
    # zero only the border that falls in the padding, copy the rest in one strided slice
    if y0 > 0:
        dst[:, :, :y0] = 0
    if y1 < oh:
        dst[:, :, y1:] = 0
    if x0 > 0:
        dst[:, :, y0:y1, :x0] = 0
    if x1 < ow:
        dst[:, :, y0:y1, x1:] = 0
    if y1 > y0 and x1 > x0:
        dst[:, :, y0:y1, x0:x1] = x[:, :, iy:iy + (y1 - y0 - 1) * sh + 1:sh, ix:ix + (x1 - x0 - 1) * sw + 1:sw]


def col2im(col, h, w, geom, out=None):
    """(N, C, kh, kw, OH, OW) -> (N, C, H, W), summing the taps that meet each input pixel (in (ky, kx) order)."""
    if backend.is_gpu(col):
        return col2im_gpu(col, h, w, geom, out)
    xp = backend.get_array_module(col)
    n, c, kh, kw, oh, ow = col.shape
    (sh, sw), (ph, pw), (dh, dw) = geom.stride, geom.pad, geom.dilation
    if out is None:
        out = xp.zeros((n, c, h, w), dtype=col.dtype)
    else:
        out[...] = 0
    for ky in range(kh):
        for kx in range(kw):
            y0, y1, iy = tap_range(ky * dh - ph, sh, oh, h)
            x0, x1, ix = tap_range(kx * dw - pw, sw, ow, w)
            if y1 > y0 and x1 > x0:
                out[:, :, iy:iy + (y1 - y0 - 1) * sh + 1:sh, ix:ix + (x1 - x0 - 1) * sw + 1:sw] += \
                    col[:, :, ky, kx, y0:y1, x0:x1]
    return out


# ---------------------------------------------------------------------------------------------------------------
# GPU kernels: im2col and col2im, one ElementwiseKernel each (cf. chainer's im2col_gpu/col2im_gpu), with dilation.
# Their numpy twins, and test oracles, are im2col and col2im above, whose Python loop over the kh*kw taps costs a
# few kernel launches per tap on the GPU (a 16x16 deconvolution has 256). col2im gathers: each image cell sums the
# taps that meet it in the twin's (ky, kx) order, without atomics, so the sums round alike. Indices are 32-bit:
# arrays up to 2^31 elements (FCN's largest column buffer at 500x500 has 2.8e8).

_GEOMETRY = ("int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, int32 sy, int32 sx, int32 ph, "
             "int32 pw, int32 dil_y, int32 dil_x")

_im2col_fwd = backend.ElementwiseKernel(
    "raw T img, " + _GEOMETRY,
    "T col",
    """
    int c0 = i / (kh * kw * out_h * out_w);
    int ky = i / (kw * out_h * out_w) % kh;
    int kx = i / (out_h * out_w) % kw;
    int out_y = i / out_w % out_h;
    int out_x = i % out_w;
    int in_y = ky * dil_y + out_y * sy - ph;
    int in_x = kx * dil_x + out_x * sx - pw;
    if (in_y >= 0 && in_y < h && in_x >= 0 && in_x < w) {
      col = img[in_x + w * (in_y + h * c0)];
    } else {
      col = 0;
    }
    """,
    "fcn_im2col")

_col2im_fwd = backend.ElementwiseKernel(
    "raw T col, " + _GEOMETRY,
    "T img",
    """
    int c0 = i / (h * w);
    int y = i / w % h + ph;
    int x = i % w + pw;
    T acc = 0;
    // undilated, only the taps congruent to the pixel modulo the stride meet it: step over the rest (FCN-32s's
    // k64 s32 upsampling visits 2 x 2 taps a pixel instead of 64 x 64), in the same ascending order
    for (int ky = dil_y == 1 ? y % sy : 0; ky < kh; ky += dil_y == 1 ? sy : 1) {
      int out_y = y - ky * dil_y;
      if (out_y < 0 || out_y % sy != 0) continue;
      out_y /= sy;
      if (out_y >= out_h) continue;
      for (int kx = dil_x == 1 ? x % sx : 0; kx < kw; kx += dil_x == 1 ? sx : 1) {
        int out_x = x - kx * dil_x;
        if (out_x < 0 || out_x % sx != 0) continue;
        out_x /= sx;
        if (out_x >= out_w) continue;
        acc += col[(((c0 * kh + ky) * kw + kx) * out_h + out_y) * out_w + out_x];
      }
    }
    img = acc;
    """,
    "fcn_col2im")

INDEX_LIMIT = 2 ** 31


def _check_size(*arrays):
    for a in arrays:
        if a.size >= INDEX_LIMIT:
            raise ValueError(f"an array of shape {a.shape} has {a.size} elements, more than the GPU im2col/col2im "
                             f"kernels' 32-bit indices reach ({INDEX_LIMIT}); use a smaller input")


def im2col_gpu(x, geom, out=None):
    """(N, C, H, W) -> (N, C, kh, kw, OH, OW), as im2col, in one kernel."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = geom.out_size(h, w)
    if out is None:
        out = xp.empty((n, c, *geom.kernel, oh, ow), dtype=x.dtype)
    x = xp.ascontiguousarray(x)
    _check_size(x, out)
    _im2col_fwd(x, h, w, oh, ow, *geom.kernel, *geom.stride, *geom.pad, *geom.dilation, out)
    return out


def col2im_gpu(col, h, w, geom, out=None):
    """(N, C, kh, kw, OH, OW) -> (N, C, H, W), as col2im, in one kernel (every cell is written)."""
    xp = backend.get_array_module(col)
    n, c, kh, kw, oh, ow = col.shape
    if out is None:
        out = xp.empty((n, c, h, w), dtype=col.dtype)
    col = xp.ascontiguousarray(col)
    _check_size(col, out)
    _col2im_fwd(col, h, w, oh, ow, kh, kw, *geom.stride, *geom.pad, *geom.dilation, out)
    return out
