"""Depthwise convolution (group == input channels, weight (C * multiplier, 1, kh, kw): MobileNet's 3x3 layers) as
a loop over the kernel taps, each one multiply-add of a whole view, on the array module (the forward on wide
rows: see depthwise_forward). Channels are independent, so the work goes in blocks of channels (a block's
output about BLOCK values: it and its temporaries stay in cache) shared out to the CPU kernel threads
(threads.parallel_map); no loop over pixels.
The dispatch (conv.py) takes this strategy on the CPU before the per-group BLAS strategies, whose Python loop
over groups of one channel each dominates a MobileNet forward; the sums are Caffe's (im2col + GEMM: taps in
row-major order, then the bias). Output channel g * multiplier + j reads input channel g.

Supports and applies: group == input channels, one input channel per group, numpy arrays; all three
operations, all groups at once (ALL_GROUPS)."""
import numpy

from layers import backend
from layers.kernels.geometry import tap_range
from layers.kernels.threads import POOL, parallel_map

ALL_GROUPS = True
BLOCK = 1 << 17          # output values per block of channels (512 KB in float32)


def is_depthwise(channels, group, weight_shape):
    return group > 1 and group == channels and weight_shape[1] == 1


def supports(op, geom, x, w, y):
    return (is_depthwise(x.shape[1], geom.group, w.shape) and not backend.is_gpu(x)
            and all(type(a) is numpy.ndarray for a in (x, w, y)))


applies = supports


def forward(x, w, b, out, geom):
    depthwise_forward(x, w, b, out, geom.stride, geom.pad, geom.dilation)


def data_grad(dy, w, dx, geom):
    depthwise_data_grad(dy, w, dx, geom.stride, geom.pad, geom.dilation)


def weight_grad(x, dy, dw, geom):
    depthwise_weight_grad(x, dy, dw, geom.stride, geom.pad, geom.dilation)


def _taps(x_shape, out_shape, kernel, stride, pad, dilation):
    """Per kernel tap that meets the image: (ky, kx, input slices, output slices), in row-major tap order."""
    (h, w), (oh, ow) = x_shape[2:], out_shape[-2:]
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    for ky in range(kernel[0]):
        y0, y1, iy = tap_range(ky * dh - ph, sh, oh, h)
        for kx in range(kernel[1]):
            x0, x1, ix = tap_range(kx * dw - pw, sw, ow, w)
            if y1 > y0 and x1 > x0:
                src = (Ellipsis, slice(iy, iy + (y1 - y0 - 1) * sh + 1, sh),
                       slice(ix, ix + (x1 - x0 - 1) * sw + 1, sw))
                yield ky, kx, src, (Ellipsis, slice(y0, y1), slice(x0, x1))


def _split(x, weight, out):
    """x (N, C, 1, H, W), weight (C, M/C, kh, kw) and out (N, C, M/C, OH, OW) views: the multiplier axis apart."""
    n, c = x.shape[:2]
    mult = weight.shape[0] // c
    return (x.reshape(n, c, 1, *x.shape[2:]), weight.reshape(c, mult, *weight.shape[2:]),
            out.reshape(n, c, mult, *out.shape[2:]))


def _by_channel_blocks(fn, channels, values_per_channel):
    """fn(slice of channels) over blocks of channels of about BLOCK output values, on the CPU kernel threads
    (at least two blocks a thread when there are channels enough); numpy releases the GIL in each operation."""
    step = max(1, min(BLOCK // max(1, values_per_channel), -(-channels // (2 * POOL.size))))
    parallel_map(lambda i: fn(slice(i * step, min(channels, (i + 1) * step))), -(-channels // step))


def depthwise_forward(x, weight, bias, out, stride, pad, dilation, group=None):
    """out (N, M, OH, OW) = the depthwise convolution of x (N, C, H, W) with weight (M, 1, kh, kw), + bias (M,).

    Computed on wide rows, so that every operation runs over long contiguous stretches (numpy is slow on the
    short rows of a strided 2-D window): the zero-padded input is laid out in stride phases (phase (a, b) holds
    the padded rows a, a + sh, ... and columns b, b + sw, ...; one phase at stride 1), each flattened with rows of
    OW + reach columns. Output row oy, column ox of tap (ky, kx) then reads the flat phase at oy * width + ox + a
    fixed offset, so a tap is one multiply-add of a flat slice over OH rows of that width; the columns past OW
    are dropped at the end. Taps that meet padding add zeros: the sums are the tap loop's, bit for bit."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    m, (kh, kw) = weight.shape[0] // c, weight.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    oh, ow = out.shape[2:]
    # per tap: its phase (a, b) and its offset in phase rows and columns
    taps = [(ky, kx, (ky * dh) % sh, (kx * dw) % sw, (ky * dh) // sh, (kx * dw) // sw)
            for ky in range(kh) for kx in range(kw)]
    width = ow + (dw * (kw - 1)) // sw
    rows = oh + (dh * (kh - 1)) // sh + 1          # a spare row: the last wide row's slices stay inside
    size = oh * width
    phases = sorted({(a, b) for _, _, a, b, _, _ in taps})
    w4, y5 = weight.reshape(c, m, kh, kw), out.reshape(n, c, m, oh, ow)
    b4 = None if bias is None else bias.reshape(c, m, 1, 1)

    def block(cs):
        count = len(range(*cs.indices(c)))
        flat = {}
        for a, b in phases:
            flat[a, b] = xp.zeros((n, count, 1, rows * width), x.dtype)
            y0, y1, iy = tap_range(a - ph, sh, rows, h)
            x0, x1, ix = tap_range(b - pw, sw, width, w)
            if y1 > y0 and x1 > x0:
                flat[a, b].reshape(n, count, rows, width)[:, :, y0:y1, x0:x1] = \
                    x[:, cs, iy:iy + (y1 - y0 - 1) * sh + 1:sh, ix:ix + (x1 - x0 - 1) * sw + 1:sw]
        wide = xp.zeros((n, count, m, size), x.dtype)
        product = xp.empty_like(wide)
        wc = w4[cs]
        for ky, kx, a, b, ry, rx in taps:
            at = ry * width + rx
            xp.multiply(flat[a, b][..., at:at + size], wc[:, :, ky, kx, None], out=product)
            wide += product
        y = y5[:, cs]
        y[...] = wide.reshape(n, count, m, oh, width)[..., :ow]
        if b4 is not None:
            y += b4[cs]
    _by_channel_blocks(block, c, n * m * oh * width)
    return out


def depthwise_data_grad(dy, weight, dx, stride, pad, dilation, group=None):
    """dx (N, C, H, W) = the input gradient of the depthwise convolution from its output gradient dy."""
    dx5, w4, dy5 = _split(dx, weight, dy)
    taps = list(_taps(dx.shape, dy.shape, weight.shape[2:], stride, pad, dilation))

    def block(c):
        d, dyc, w = dx5[:, c], dy5[:, c], w4[c]
        d[...] = 0
        for ky, kx, src, dst in taps:
            part = dyc[dst] * w[:, :, ky, kx, None, None]
            d[src] += part if part.shape[2] == 1 else part.sum(axis=2, keepdims=True)
    _by_channel_blocks(block, dx.shape[1], dy.size // dx.shape[1])
    return dx


def depthwise_weight_grad(x, dy, dweight, stride, pad, dilation, group=None):
    """dweight (M, 1, kh, kw) += the weight gradient of the depthwise convolution x -> dy."""
    x5, dw4, dy5 = _split(x, dweight, dy)
    taps = list(_taps(x.shape, dy.shape, dweight.shape[2:], stride, pad, dilation))

    def block(c):
        xc, dyc, dw = x5[:, c], dy5[:, c], dw4[c]
        for ky, kx, src, dst in taps:
            dw[:, :, ky, kx] += (xc[src] * dyc[dst]).sum(axis=(0, 3, 4))
    _by_channel_blocks(block, x.shape[1], dy.size // x.shape[1])
    return dweight
