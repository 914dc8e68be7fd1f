"""BNLL layer ("BNLL", binomial normal log likelihood): y = log(1 + exp(x)) (softplus), computed as
max(x, 0) + log(1 + exp(-|x|)); dx = dy * sigmoid(x) with exp clamped at x = 50. Semantics: caffe bnll_layer.cpp.
The gradient reads the input: run in place, the layer keeps a copy of it (Caffe would read the output)."""
from layers.base import NeuronLayer
from layers.registry import register

THRESHOLD = 50       # Caffe's kBNLL_THRESHOLD


@register("BNLL")
class BNLLLayer(NeuronLayer):
    def forward(self, bottom, top):
        xp, x = self.xp(bottom[0]), bottom[0].data
        self.saved_bottom = x.copy() if top[0] is bottom[0] else None
        top[0].data[...] = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp = self.xp(top[0])
            x = bottom[0].data if self.saved_bottom is None else self.saved_bottom
            e = xp.exp(xp.minimum(x, x.dtype.type(THRESHOLD)))
            bottom[0].diff[...] = top[0].diff * (e / (e + 1))
