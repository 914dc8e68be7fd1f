"""Power layer ("Power"): y = (shift + scale * x) ^ power. Semantics: caffe power_layer.cpp.

The gradient follows Caffe's case split, so it matches Caffe's numbers (and its 0/0 at x = 0 when shift is 0
and power is not 1 or 2): scale*power = 0 gives a constant top and a zero gradient; power 1 gives
scale*power; power 2 gives 2*scale*(shift + scale*x); shift 0 gives power*y/x; otherwise
scale*power*y/(shift + scale*x).
"""
import numpy

from layers.base import NeuronLayer
from layers.registry import register


def power_gradient(x, y, power, scale, shift):
    """dy/dx of y = (shift + scale*x)^power, following Caffe's cases (a scalar or an array like x)."""
    diff_scale = power * scale
    if diff_scale == 0 or power == 1:
        return diff_scale
    if power == 2:
        grad = diff_scale * scale * x
        if shift != 0:
            grad += diff_scale * shift
        return grad
    if shift == 0:
        return power * y / x
    return y / (x * scale + shift) * diff_scale


@register("Power")
class PowerLayer(NeuronLayer):
    def setup(self, bottom, top):
        p = self.param.power_param
        self.power, self.scale, self.shift = p.power, p.scale, p.shift

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        x = bottom[0].data
        t = x.dtype.type
        power, scale, shift = t(self.power), t(self.scale), t(self.shift)
        if power * scale == 0:                    # the input does not matter
            top[0].data[...] = t(1) if power == 0 else numpy.power(shift, power)
            return
        y = x * scale if scale != 1 else x.copy()
        if shift != 0:
            y += shift
        if power != 1:
            xp.power(y, power, out=y)
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data
        t = x.dtype.type
        power, scale, shift = t(self.power), t(self.scale), t(self.shift)
        if power * scale == 0:
            bottom[0].diff[...] = 0               # Caffe sets it without reading the top diff
            return
        if power != 1 and top[0] is bottom[0]:
            raise self.error("cannot back-propagate in place when power is not 1: the gradient needs the input; "
                             "give the top its own name")
        bottom[0].diff[...] = top[0].diff * power_gradient(x, top[0].data, power, scale, shift)
