"""Convolution geometry and im2col/col2im on the array module (cf. chainer/utils/conv.py).

Columns are laid out (N, C, kh, kw, OH, OW) so that a convolution is one matrix product per group:
W (M, C*kh*kw) x col (C*kh*kw, OH*OW).
"""
from layers import backend


def conv_outsize(size, kernel, stride, pad, dilation=1):
    """Caffe's convolution output size (floor)."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


def deconv_outsize(size, kernel, stride, pad, dilation=1):
    """Caffe's deconvolution output size: stride * (size - 1) + extent - 2 * pad."""
    extent = dilation * (kernel - 1) + 1
    return stride * (size - 1) + extent - 2 * pad


def im2col(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1, out=None):
    """(N, C, H, W) -> (N, C, kh, kw, OH, OW): for each kernel tap, the strided input it meets."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    oh = conv_outsize(h, kh, sh, ph, dh)
    ow = conv_outsize(w, kw, sw, pw, dw)
    if out is None:
        out = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            _copy_tap(x, out[:, :, ky, kx], ky * dh - ph, kx * dw - pw, sh, sw)
    return out


def _tap_range(offset, stride, out_size, in_size):
    """Output indices o with 0 <= offset + o*stride < in_size, as (first o, end o, first input index)."""
    first = min(out_size, (-offset + stride - 1) // stride) if offset < 0 else 0
    last = in_size - 1 - offset
    end = max(first, min(out_size, last // stride + 1)) if last >= 0 else first
    return first, end, offset + first * stride


def _copy_tap(x, dst, oy, ox, sh, sw):
    h, w = x.shape[2:]
    oh, ow = dst.shape[2:]
    y0, y1, iy = _tap_range(oy, sh, oh, h)
    x0, x1, ix = _tap_range(ox, sw, ow, w)
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


def col2im(col, h, w, sh, sw, ph, pw, dh=1, dw=1, out=None):
    """(N, C, kh, kw, OH, OW) -> (N, C, H, W), summing the taps that meet each input pixel."""
    xp = backend.get_array_module(col)
    n, c, kh, kw, oh, ow = col.shape
    if out is None:
        out = xp.zeros((n, c, h, w), dtype=col.dtype)
    else:
        out[...] = 0
    for ky in range(kh):
        for kx in range(kw):
            y0, y1, iy = _tap_range(ky * dh - ph, sh, oh, h)
            x0, x1, ix = _tap_range(kx * dw - pw, sw, ow, w)
            if y1 > y0 and x1 > x0:
                out[:, :, iy:iy + (y1 - y0 - 1) * sh + 1:sh, ix:ix + (x1 - x0 - 1) * sw + 1:sw] += \
                    col[:, :, ky, kx, y0:y1, x0:x1]
    return out
