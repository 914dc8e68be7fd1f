"""Reduction layer ("Reduction"): reduce every axis from `axis` on (default 0: the whole blob, a 0-d top) by SUM,
ASUM (sum |x|), SUMSQ (sum x^2) or MEAN, times coeff. Semantics: caffe reduction_layer.cpp; the top has
bottom.shape[:axis]."""
import math

from layers.base import Layer
from layers.registry import register
from layers.softmax import canonical_axis
from netspec import caffe_pb2

OP = caffe_pb2.ReductionParameter


@register("Reduction")
class ReductionLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        self.op = self.param.reduction_param.operation

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        axis = canonical_axis(self, self.param.reduction_param.axis, len(shape))
        self.num, self.dim = math.prod(shape[:axis]), math.prod(shape[axis:])
        top[0].reshape(*shape[:axis])

    def _coeff(self, dtype):
        coeff = dtype.type(self.param.reduction_param.coeff)
        return coeff / dtype.type(self.dim) if self.op == OP.MEAN else coeff

    def forward(self, bottom, top):
        xp, x = self.xp(bottom[0]), bottom[0].data.reshape(self.num, self.dim)
        if self.op == OP.ASUM:
            x = xp.abs(x)
        elif self.op == OP.SUMSQ:
            x = x * x
        top[0].data[...] = (x.sum(axis=1) * self._coeff(x.dtype)).reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp, x = self.xp(top[0]), bottom[0].data.reshape(self.num, self.dim)
        dy = top[0].diff.reshape(self.num, 1) * self._coeff(x.dtype)
        if self.op == OP.ASUM:
            dy = dy * xp.sign(x)
        elif self.op == OP.SUMSQ:
            dy = dy * (2 * x)
        bottom[0].diff.reshape(self.num, self.dim)[...] = dy
