"""Sigmoid layer ("Sigmoid"): y = 1 / (1 + exp(-x)), computed as 0.5 tanh(0.5 x) + 0.5 (no overflow);
dx = dy y (1 - y). Semantics: caffe sigmoid_layer.cpp. The gradient reads only the output: runs in place."""
from layers.base import NeuronLayer
from layers.registry import register


def sigmoid(xp, x):
    half = x.dtype.type(0.5)
    return half * xp.tanh(half * x) + half


@register("Sigmoid")
class SigmoidLayer(NeuronLayer):
    def forward(self, bottom, top):
        top[0].data[...] = sigmoid(self.xp(bottom[0]), bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * y * (1 - y)
