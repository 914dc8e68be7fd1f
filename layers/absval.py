"""AbsVal layer ("AbsVal"): y = |x|, dx = sign(x) * dy. Semantics: caffe absval_layer.cpp, which refuses to run
in place (the gradient needs the input's sign)."""
from layers.base import NeuronLayer
from layers.registry import register


@register("AbsVal")
class AbsValLayer(NeuronLayer):
    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("cannot run in place; give the top its own name")

    def forward(self, bottom, top):
        self.xp(bottom[0]).abs(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self.xp(top[0]).sign(bottom[0].data)
