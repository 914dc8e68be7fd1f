"""ELU layer ("ELU"): y = x for x > 0, alpha (exp(x) - 1) otherwise; dx = dy for x > 0, dy (y + alpha) otherwise.
Semantics: caffe elu_layer.cpp (elu_param.alpha, default 1). Runs in place: for alpha >= 0 the output has the
input's sign, which is all the gradient reads of it."""
from layers.base import NeuronLayer
from layers.registry import register


@register("ELU")
class ELULayer(NeuronLayer):
    def setup(self, bottom, top):
        self.alpha = self.param.elu_param.alpha

    def forward(self, bottom, top):
        xp, x = self.xp(bottom[0]), bottom[0].data
        alpha = x.dtype.type(self.alpha)
        top[0].data[...] = xp.maximum(x, 0) + alpha * xp.expm1(xp.minimum(x, 0))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp, dy = self.xp(top[0]), top[0].diff
            alpha = dy.dtype.type(self.alpha)
            bottom[0].diff[...] = xp.where(bottom[0].data > 0, dy, dy * (top[0].data + alpha))
