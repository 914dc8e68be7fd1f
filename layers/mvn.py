"""MVN layer ("MVN"): subtract the mean of each (n, c) over H, W (of each n over C, H, W with across_channels)
and, with normalize_variance (default), divide by the standard deviation plus eps (eps is added to the standard
deviation, not to the variance). Semantics: caffe mvn_layer.cpp, whose backward
dx = (dy - mean(dy) - y mean(dy y)) / (std + eps) leaves eps out of the derivative of std, as here.
"""
from layers.base import NeuronLayer
from layers.registry import register


@register("MVN")
class MVNLayer(NeuronLayer):
    def setup(self, bottom, top):
        p = self.param.mvn_param
        self.normalize_variance, self.across_channels, self.eps = p.normalize_variance, p.across_channels, p.eps

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        b = bottom[0]                             # Caffe's legacy num/channels: at most 4 axes
        self.rows = b.num if self.across_channels else b.num * b.channels

    def forward(self, bottom, top):
        xp, x = self.xp(bottom[0]), bottom[0].data
        x2 = x.reshape(self.rows, -1)
        y = x2 - x2.mean(axis=1, keepdims=True)
        if self.normalize_variance:
            self.std = xp.sqrt((y * y).mean(axis=1, keepdims=True)) + x.dtype.type(self.eps)
            y /= self.std
        top[0].data[...] = y.reshape(x.shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.rows, -1)
        dx = dy - dy.mean(axis=1, keepdims=True)
        if self.normalize_variance:
            y = top[0].data.reshape(self.rows, -1)
            dx -= y * (dy * y).mean(axis=1, keepdims=True)
            dx /= self.std
        bottom[0].diff[...] = dx.reshape(bottom[0].shape)
