"""im2col and col2im on the GPU, one ElementwiseKernel each (cf. chainer's im2col_gpu/col2im_gpu), with dilation.

Their numpy twins, and test oracles, are layers.im2col.im2col and col2im: the same (N, C, kh, kw, OH, OW) column
layout. The generic twins loop over the kh*kw taps in Python, a few kernel launches each, which on the GPU costs
more than the copy itself (a 16x16 deconvolution has 256 taps). col2im gathers: each image cell sums the taps
that meet it, in the twin's (ky, kx) order, so no atomics are needed and the sums round alike.
Indices are 32-bit: arrays up to 2^31 elements (FCN's largest column buffer at 500x500 has 2.8e8).
"""
from layers import backend
from layers.im2col import conv_outsize

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
    for (int ky = 0; ky < kh; ++ky) {
      int out_y = y - ky * dil_y;
      if (out_y < 0 || out_y % sy != 0) continue;
      out_y /= sy;
      if (out_y >= out_h) continue;
      for (int kx = 0; kx < kw; ++kx) {
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


def im2col_gpu(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1, out=None):
    """(N, C, H, W) -> (N, C, kh, kw, OH, OW), as layers.im2col.im2col, in one kernel."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = conv_outsize(h, kh, sh, ph, dh), conv_outsize(w, kw, sw, pw, dw)
    if out is None:
        out = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    x = xp.ascontiguousarray(x)
    _check_size(x, out)
    _im2col_fwd(x, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, out)
    return out


def col2im_gpu(col, h, w, sh, sw, ph, pw, dh=1, dw=1, out=None):
    """(N, C, kh, kw, OH, OW) -> (N, C, H, W), as layers.im2col.col2im, in one kernel (every cell is written)."""
    xp = backend.get_array_module(col)
    n, c, kh, kw, oh, ow = col.shape
    if out is None:
        out = xp.empty((n, c, h, w), dtype=col.dtype)
    col = xp.ascontiguousarray(col)
    _check_size(col, out)
    _col2im_fwd(col, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, out)
    return out
