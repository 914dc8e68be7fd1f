"""Swish layer ("Swish"): y = x sigmoid(beta x); dx = dy (beta y + s (1 - beta y)) with s = sigmoid(beta x), kept
from the forward. Semantics: caffe swish_layer.cpp (swish_param.beta, default 1). Runs in place."""
from layers.base import NeuronLayer
from layers.registry import register
from layers.sigmoid import sigmoid


@register("Swish")
class SwishLayer(NeuronLayer):
    def setup(self, bottom, top):
        self.beta = self.param.swish_param.beta

    def forward(self, bottom, top):
        x = bottom[0].data
        self.sigmoid_output = sigmoid(self.xp(bottom[0]), x * x.dtype.type(self.beta))
        top[0].data[...] = x * self.sigmoid_output

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y, s = top[0].data, self.sigmoid_output
            beta_y = y * y.dtype.type(self.beta)
            bottom[0].diff[...] = top[0].diff * (beta_y + s * (1 - beta_y))
