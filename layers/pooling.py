"""Pooling layer ("Pooling"): MAX and AVE with Caffe's geometry. Semantics: caffe pooling_layer.cpp.

Output size rounds up (ceil), and a last window that would start inside the padding is dropped.
MAX: the first maximum in row-major window order wins and gets the whole gradient; padding never wins.
AVE: divides by the window clipped to the padded input (not to the image), so border windows count padding.
"""
import numpy

from layers.base import Layer
from layers.convolution import _pair
from layers.registry import register
from netspec import caffe_pb2

MAX, AVE, STOCHASTIC = (caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE,
                        caffe_pb2.PoolingParameter.STOCHASTIC)


def pool_outsize(size, kernel, stride, pad, ceil_mode=True):
    """Caffe's pooled size: ceil (or floor) of (size + 2 pad - kernel) / stride, + 1, minus a window in the pad."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _windows(x, kh, kw, sh, sw, oh, ow):
    """A (N, C, OH, OW, kh, kw) strided view of the padded input."""
    xp = numpy if isinstance(x, numpy.ndarray) else __import__("cupy")
    n, c, h, w = x.shape
    s = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, (n, c, oh, ow, kh, kw), (s[0], s[1], s[2] * sh, s[3] * sw, s[2], s[3]))


@register("Pooling")
class PoolingLayer(Layer):
    exact_num_bottom = 1
    min_num_top = 1
    max_num_top = 2          # MAX may output its argmax mask as a second top

    def setup(self, bottom, top):
        p = self.param.pooling_param
        if bottom[0].ndim != 4:
            raise self.error(f"needs an N x C x H x W bottom, got shape {bottom[0].shape}")
        self.method = p.pool
        if self.method == STOCHASTIC:
            raise self.error("STOCHASTIC pooling is not supported; use MAX or AVE")
        if len(top) == 2 and self.method != MAX:
            raise self.error("only MAX pooling has a second (mask) top")
        self.global_pooling = p.global_pooling
        if self.global_pooling:
            if p.kernel_size or p.HasField("kernel_h"):
                raise self.error("with global_pooling the kernel size is the input size; do not set it")
        else:
            has_kh, has_kw = p.HasField("kernel_h"), p.HasField("kernel_w")
            if has_kh != has_kw:
                raise self.error("kernel_h and kernel_w must be given together")
            kernel = [p.kernel_size] if p.HasField("kernel_size") else []
            self.kernel = _pair(self, kernel, p.kernel_h, p.kernel_w, has_kh, None, "kernel")
        if p.HasField("pad_h") != p.HasField("pad_w") or p.HasField("stride_h") != p.HasField("stride_w"):
            raise self.error("pad_h/pad_w and stride_h/stride_w must be given in pairs")
        self.pad = _pair(self, [p.pad] if p.HasField("pad") else [], p.pad_h, p.pad_w, p.HasField("pad_h"), 0, "pad")
        self.stride = _pair(self, [p.stride] if p.HasField("stride") else [], p.stride_h, p.stride_w,
                            p.HasField("stride_h"), 1, "stride")
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("global pooling takes no pad and stride 1")
        self.ceil_mode = p.round_mode == caffe_pb2.PoolingParameter.CEIL
        if not self.global_pooling:
            if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
                raise self.error(f"pad {self.pad} must be smaller than the kernel {self.kernel}")

    def reshape(self, bottom, top):
        n, c, h, w = bottom[0].shape
        if self.global_pooling:
            self.kernel = (h, w)
        kh, kw = self.kernel
        (sh, sw), (ph, pw) = self.stride, self.pad
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise self.error(f"the kernel {self.kernel} is larger than the padded input {h + 2 * ph}x{w + 2 * pw} "
                             f"(bottom {bottom[0].shape}, pad {self.pad})")
        self.out = (pool_outsize(h, kh, sh, ph, self.ceil_mode), pool_outsize(w, kw, sw, pw, self.ceil_mode))
        for t in top:
            t.reshape(n, c, *self.out)

    def _padded_extent(self, h, w):
        """The padded array's size: enough to hold every window (pad before, and after as needed)."""
        (kh, kw), (sh, sw), (ph, pw), (oh, ow) = self.kernel, self.stride, self.pad, self.out
        return max(h + 2 * ph, (oh - 1) * sh + kh), max(w + 2 * pw, (ow - 1) * sw + kw)

    def _pool_sizes(self, h, w, dtype):
        """AVE's divisor per output cell: the window clipped to the padded input (Caffe's pool_size)."""
        (kh, kw), (sh, sw), (ph, pw), (oh, ow) = self.kernel, self.stride, self.pad, self.out
        ys = numpy.arange(oh) * sh - ph
        xs = numpy.arange(ow) * sw - pw
        hs = numpy.minimum(ys + kh, h + ph) - ys
        ws = numpy.minimum(xs + kw, w + pw) - xs
        return (hs[:, None] * ws[None, :]).astype(dtype)

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        x = bottom[0].data
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw), (oh, ow) = self.kernel, self.stride, self.pad, self.out
        hp, wp = self._padded_extent(h, w)
        fill = -xp.inf if self.method == MAX else 0
        padded = xp.full((n, c, hp, wp), fill, dtype=x.dtype)
        padded[:, :, ph:ph + h, pw:pw + w] = x
        windows = _windows(padded, kh, kw, sh, sw, oh, ow).reshape(n, c, oh, ow, kh * kw)
        if self.method == MAX:
            arg = windows.argmax(axis=4)                   # first maximum wins, as Caffe's strict >
            top[0].data[...] = xp.take_along_axis(windows, arg[..., None], axis=4)[..., 0]
            ky, kx = arg // kw, arg % kw
            rows = xp.arange(oh).reshape(-1, 1) * sh + ky - ph
            cols = xp.arange(ow).reshape(1, -1) * sw + kx - pw
            self.argmax = rows * w + cols                  # flat index into the unpadded H x W plane
            if len(top) > 1:
                top[1].data[...] = self.argmax
        else:
            sizes = xp.asarray(self._pool_sizes(h, w, x.dtype))
            top[0].data[...] = windows.sum(axis=4) / sizes

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp(top[0])
        dy = top[0].diff
        n, c, h, w = bottom[0].shape
        (kh, kw), (sh, sw), (ph, pw), (oh, ow) = self.kernel, self.stride, self.pad, self.out
        if self.method == MAX:
            planes = xp.arange(n * c).reshape(n, c, 1, 1) * (h * w)
            index = (self.argmax + planes).ravel()
            bottom[0].diff[...] = xp.bincount(index, weights=dy.ravel(), minlength=n * c * h * w).reshape(
                bottom[0].shape)
            return
        hp, wp = self._padded_extent(h, w)
        grad = dy / xp.asarray(self._pool_sizes(h, w, dy.dtype))
        padded = xp.zeros((n, c, hp, wp), dtype=dy.dtype)
        for ky in range(kh):
            for kx in range(kw):
                padded[:, :, ky:ky + (oh - 1) * sh + 1:sh, kx:kx + (ow - 1) * sw + 1:sw] += grad
        bottom[0].diff[...] = padded[:, :, ph:ph + h, pw:pw + w]
