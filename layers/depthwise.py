"""Depthwise convolution (group == input channels, weight (C * multiplier, 1, kh, kw): MobileNet's 3x3 layers) as
a loop over the kernel taps, each one multiply-add of a strided view of the whole batch, on the array module.
Convolution's CPU path calls these instead of its per-group BLAS kernels, whose Python loop over groups of one
channel each dominates a MobileNet forward; the sums are Caffe's (im2col + GEMM: taps in row-major order, then
the bias). Output channel g * multiplier + j reads input channel g."""
from layers.im2col import _tap_range


def is_depthwise(channels, group, weight_shape):
    return group > 1 and group == channels and weight_shape[1] == 1


def _taps(x_shape, out_shape, kernel, stride, pad, dilation):
    """Per kernel tap that meets the image: (ky, kx, input slices, output slices), in row-major tap order."""
    (h, w), (oh, ow) = x_shape[2:], out_shape[-2:]
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    for ky in range(kernel[0]):
        y0, y1, iy = _tap_range(ky * dh - ph, sh, oh, h)
        for kx in range(kernel[1]):
            x0, x1, ix = _tap_range(kx * dw - pw, sw, ow, w)
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


def depthwise_forward(x, weight, bias, out, stride, pad, dilation, group=None):
    """out (N, M, OH, OW) = the depthwise convolution of x (N, C, H, W) with weight (M, 1, kh, kw), + bias (M,)."""
    x5, w4, y5 = _split(x, weight, out)
    y5[...] = 0
    for ky, kx, src, dst in _taps(x.shape, out.shape, weight.shape[2:], stride, pad, dilation):
        y5[dst] += x5[src] * w4[:, :, ky, kx, None, None]
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


def depthwise_data_grad(dy, weight, dx, stride, pad, dilation, group=None):
    """dx (N, C, H, W) = the input gradient of the depthwise convolution from its output gradient dy."""
    dx5, w4, dy5 = _split(dx, weight, dy)
    dx[...] = 0
    for ky, kx, src, dst in _taps(dx.shape, dy.shape, weight.shape[2:], stride, pad, dilation):
        part = dy5[dst] * w4[:, :, ky, kx, None, None]
        dx5[src] += part if part.shape[2] == 1 else part.sum(axis=2, keepdims=True)
    return dx


def depthwise_weight_grad(x, dy, dweight, stride, pad, dilation, group=None):
    """dweight (M, 1, kh, kw) += the weight gradient of the depthwise convolution x -> dy."""
    x5, dw4, dy5 = _split(x, dweight, dy)
    for ky, kx, src, dst in _taps(x.shape, dy.shape, dweight.shape[2:], stride, pad, dilation):
        dw4[:, :, ky, kx] += (x5[src] * dy5[dst]).sum(axis=(0, 3, 4))
    return dweight
