"""The kernels' geometry: netspec/geometry.py (ConvGeometry, output sizes, parameter parsing; it sits in netspec so
that netspec's graph tools share it), and the tap ranges the im2col-style loops clip windows with."""
from netspec.geometry import (ConvGeometry, conv_geometry, conv_outsize, deconv_outsize, pair,  # noqa: F401
                              pool_outsize, pool_pairs)


def tap_range(offset, stride, out_size, in_size):
    """Output indices o with 0 <= offset + o*stride < in_size, as (first o, end o, first input index)."""
    first = min(out_size, (-offset + stride - 1) // stride) if offset < 0 else 0
    last = in_size - 1 - offset
    end = max(first, min(out_size, last // stride + 1)) if last >= 0 else first
    return first, end, offset + first * stride


def touched(out_size, in_size, kernel, stride, pad, dilation):
    """The output range [first, end) whose windows overlap the input; the rest sees only padding."""
    extent = dilation * (kernel - 1) + 1
    first = max(0, -(-(pad - extent + 1) // stride))
    end = min(out_size, (in_size - 1 + pad) // stride + 1)
    return first, max(first, end)
