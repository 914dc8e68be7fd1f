"""LRN layer ("LRN"): local response normalization. Semantics: caffe lrn_layer.cpp.

ACROSS_CHANNELS (AlexNet, FCN-AlexNet's norm1/norm2):
    y = x * s^-beta,  s = k + alpha/local_size * sum of x^2 over channels c-(n-1)/2 .. c+(n-1)/2
with zeros beyond the channel edges; the gradient is
    dx = dy * s^-beta - 2*alpha*beta/local_size * x * (window sum of dy * y / s).
WITHIN_CHANNEL: y = x * (1 + alpha * m)^-beta with m the local_size x local_size average of x^2 (pad
(n-1)/2, stride 1, always divided by n^2, padded cells included); k is not used. Caffe builds it from
Split/Power/Pooling/Power/Eltwise sublayers; this is the same arithmetic, and the gradient is theirs chained.
The gradient reads the top's data, so the layer cannot run in place.
"""
from layers import backend
from layers.base import Layer
from layers.power import power_gradient
from layers.registry import register
from netspec import caffe_pb2

REGION = caffe_pb2.LRNParameter


def window_sum(a, size, axes):
    """Sum over the `size` entries centred on each position along each of `axes`, zeros beyond the edges."""
    xp = backend.get_array_module(a)
    pad = (size - 1) // 2
    for axis in axes:
        widths = [(0, 0)] * a.ndim
        widths[axis] = (pad, pad)
        padded = xp.pad(a, widths)
        n = a.shape[axis]
        at = [slice(None)] * a.ndim
        total = None
        for i in range(size):
            at[axis] = slice(i, i + n)
            total = padded[tuple(at)].copy() if total is None else total + padded[tuple(at)]
        a = total
    return a


@register("LRN")
class LRNLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.lrn_param
        self.size, self.alpha, self.beta, self.k = p.local_size, p.alpha, p.beta, p.k
        self.region = p.norm_region
        if self.size % 2 != 1:
            raise self.error(f"lrn_param.local_size must be odd, got {self.size}")

    def reshape(self, bottom, top):
        if bottom[0].ndim != 4:
            raise self.error(f"the bottom must have 4 axes (num, channels, height, width), got {bottom[0].shape}")
        if top[0] is bottom[0]:
            raise self.error("cannot run in place (the gradient needs the input and the output); give the top "
                             "its own name")
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        t = x.dtype.type
        if self.region == REGION.ACROSS_CHANNELS:
            self.scale = window_sum(x * x, self.size, (1,))
            self.scale *= t(self.alpha) / t(self.size)
            self.scale += t(self.k)
        else:
            self.mean = window_sum(x * x, self.size, (2, 3))
            self.mean /= t(self.size * self.size)                    # AVE pooling: the sum, then / n^2
            self.scale = self.mean * t(self.alpha) + t(1)
        top[0].data[...] = x * self.scale ** t(-self.beta)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, y, dy, s = bottom[0].data, top[0].data, top[0].diff, self.scale
        t = x.dtype.type
        scaled = s ** t(-self.beta)                                  # the power sublayer's output, for WITHIN
        if self.region == REGION.ACROSS_CHANNELS:
            ratio = window_sum(dy * y / s, self.size, (1,))
            bottom[0].diff[...] = dy * scaled - t(2.0 * self.alpha * self.beta / self.size) * x * ratio
            return
        # WITHIN_CHANNEL, Caffe's sublayers backwards: product, power (-beta, alpha, 1), AVE pooling, square
        d_scaled = dy * x
        d_mean = d_scaled * power_gradient(self.mean, scaled, t(-self.beta), t(self.alpha), t(1))
        d_square = window_sum(d_mean / t(self.size * self.size), self.size, (2, 3))
        bottom[0].diff[...] = dy * scaled + d_square * (t(2) * x)
