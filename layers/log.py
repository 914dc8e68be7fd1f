"""Log layer ("Log"): y = log_base(shift + scale * x), base -1 meaning e. Semantics: caffe log_layer.cpp.

dy/dx = scale / ln(base) / (shift + scale * x). The gradient reads the bottom's data, so (as in Caffe) the
layer must not run in place when a gradient is needed.
"""
import numpy

from layers.base import NeuronLayer
from layers.registry import register


@register("Log")
class LogLayer(NeuronLayer):
    def setup(self, bottom, top):
        p = self.param.log_param
        if p.base != -1 and not p.base > 0:
            raise self.error(f"log_param.base must be strictly positive (or -1 for e), got {p.base}")
        t = bottom[0].dtype.type
        log_base = t(1) if p.base == -1 else numpy.log(t(p.base))
        if not numpy.isfinite(log_base) or log_base == 0:
            raise self.error(f"log_param.base {p.base} has no usable logarithm (log(base) = {log_base})")
        self.base_scale = t(1) / log_base
        self.input_scale, self.input_shift = t(p.scale), t(p.shift)
        self.backward_num_scale = self.input_scale / log_base

    def _shifted(self, x):
        t = x.dtype.type
        y = x * t(self.input_scale) if self.input_scale != 1 else x.copy()
        if self.input_shift != 0:
            y += t(self.input_shift)
        return y

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        y = xp.log(self._shifted(bottom[0].data))
        if self.base_scale != 1:
            y *= y.dtype.type(self.base_scale)
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if top[0] is bottom[0]:
            raise self.error("cannot back-propagate in place: the gradient needs the input; give the top its "
                             "own name")
        grad = 1 / self._shifted(bottom[0].data)
        if self.backward_num_scale != 1:
            grad *= grad.dtype.type(self.backward_num_scale)
        bottom[0].diff[...] = top[0].diff * grad
