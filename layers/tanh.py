"""TanH layer ("TanH"): y = tanh(x), dx = dy (1 - y^2). Semantics: caffe tanh_layer.cpp. The gradient reads only
the output: runs in place."""
from layers.base import NeuronLayer
from layers.registry import register


@register("TanH")
class TanHLayer(NeuronLayer):
    def forward(self, bottom, top):
        self.xp(bottom[0]).tanh(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * (1 - y * y)
