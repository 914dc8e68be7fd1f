"""Clip layer ("Clip"): y = max(min, min(x, max)); dx = dy where min <= x <= max, else 0 (ReLU6 is min 0 max 6).
Semantics: caffe clip_layer.cpp; clip_param's min and max are required. The gradient reads the input: run in
place, the layer keeps a copy of it (Caffe would read the clipped output and pass every gradient)."""
from layers.base import NeuronLayer
from layers.registry import register


@register("Clip")
class ClipLayer(NeuronLayer):
    def setup(self, bottom, top):
        p = self.param.clip_param
        if not (p.HasField("min") and p.HasField("max")):
            raise self.error("clip_param needs both min and max")
        self.min, self.max = p.min, p.max
        if self.min > self.max:
            raise self.error(f"clip_param.min {self.min} is above max {self.max}")

    def forward(self, bottom, top):
        xp, x = self.xp(bottom[0]), bottom[0].data
        t = x.dtype.type
        self.saved_bottom = x.copy() if top[0] is bottom[0] else None
        top[0].data[...] = xp.maximum(t(self.min), xp.minimum(x, t(self.max)))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].data if self.saved_bottom is None else self.saved_bottom
            t = x.dtype.type
            bottom[0].diff[...] = top[0].diff * ((x >= t(self.min)) & (x <= t(self.max)))
