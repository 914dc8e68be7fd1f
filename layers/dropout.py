"""Dropout layer ("Dropout"): in TRAIN, keep each element with probability 1 - dropout_ratio and scale the kept
ones by 1 / (1 - dropout_ratio); in TEST, the identity. Semantics: caffe dropout_layer.cpp (element-wise, not
channel-wise as pytorch-fcn's Dropout2d). Usually in place (FCN's drop6/drop7). The mask is drawn by
layers.rng.uniform, on the generator of the array module (numpy's or CuPy's) that layers.rng.seed seeds."""
from layers import rng
from layers.base import NeuronLayer
from layers.registry import register


@register("Dropout")
class DropoutLayer(NeuronLayer):
    def setup(self, bottom, top):
        self.ratio = self.param.dropout_param.dropout_ratio
        if not 0 <= self.ratio < 1:
            raise self.error(f"dropout_param.dropout_ratio must be in [0, 1), got {self.ratio}")
        self.scale = 1.0 / (1.0 - self.ratio)

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.phase != "TRAIN":
            if top[0] is not bottom[0]:
                top[0].data[...] = x
            return
        xp = self.xp(bottom[0])
        keep = rng.uniform(xp, x.shape) >= self.ratio            # Bernoulli(1 - ratio)
        self.mask = keep.astype(x.dtype) * x.dtype.type(self.scale)   # 0 or 1/(1 - ratio)
        top[0].data[...] = x * self.mask

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        if self.phase != "TRAIN":
            if top[0] is not bottom[0]:
                bottom[0].diff[...] = dy
            return
        bottom[0].diff[...] = dy * self.mask
