"""Exp layer ("Exp"): y = base ^ (shift + scale * x), base -1 meaning e. Semantics: caffe exp_layer.cpp.

As Caffe, it computes y = outer * exp(inner * x) with inner = ln(base) * scale and outer = base ^ shift;
dy/dx = inner * y, so it may run in place.
"""
import numpy

from layers.base import NeuronLayer
from layers.registry import register


@register("Exp")
class ExpLayer(NeuronLayer):
    def setup(self, bottom, top):
        p = self.param.exp_param
        if p.base != -1 and not p.base > 0:
            raise self.error(f"exp_param.base must be strictly positive (or -1 for e), got {p.base}")
        t = bottom[0].dtype.type
        log_base = t(1) if p.base == -1 else numpy.log(t(p.base))
        if not numpy.isfinite(log_base):
            raise self.error(f"log(exp_param.base) = log({p.base}) is not finite")
        self.inner_scale = log_base * t(p.scale)
        if p.shift == 0:
            self.outer_scale = t(1)
        else:
            self.outer_scale = numpy.exp(t(p.shift)) if p.base == -1 else numpy.power(t(p.base), t(p.shift))

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        x = bottom[0].data
        t = x.dtype.type
        y = x * t(self.inner_scale) if self.inner_scale != 1 else x
        y = xp.exp(y)
        if self.outer_scale != 1:
            y *= t(self.outer_scale)
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        grad = top[0].data * top[0].diff
        if self.inner_scale != 1:
            grad *= grad.dtype.type(self.inner_scale)
        bottom[0].diff[...] = grad
