"""ReLU layer ("ReLU"): max(x, 0) + negative_slope * min(x, 0). Semantics: caffe relu_layer.cpp.
Usually in place (bottom == top); the gradient test reads the (post-ReLU) data, which has the same sign."""
from layers.base import Layer
from layers.registry import register


@register("ReLU")
class ReLULayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        self.negative_slope = self.param.relu_param.negative_slope

    def reshape(self, bottom, top):
        if top[0] is not bottom[0]:
            top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        x = bottom[0].data
        if self.negative_slope:
            top[0].data[...] = xp.where(x > 0, x, x * x.dtype.type(self.negative_slope))
        else:
            xp.maximum(x, 0, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = self.xp(top[0])
        positive = bottom[0].data > 0
        dy = top[0].diff
        if self.negative_slope:
            bottom[0].diff[...] = xp.where(positive, dy, dy * dy.dtype.type(self.negative_slope))
        else:
            bottom[0].diff[...] = dy * positive
