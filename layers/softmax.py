"""Softmax layer ("Softmax"): softmax over `axis` (default 1, the channels). Semantics: caffe softmax_layer.cpp."""
from layers import backend
from layers.base import Layer
from layers.registry import register


def canonical_axis(layer, axis, ndim):
    """Caffe's CanonicalAxisIndex: a negative axis counts from the end; out of range is an error."""
    if not -ndim <= axis < ndim:
        raise layer.error(f"axis {axis} is out of range for a blob with {ndim} axes")
    return axis + ndim if axis < 0 else axis


def softmax(x, axis, out=None):
    """Numerically stable softmax (max subtracted first, as Caffe does)."""
    xp = backend.get_array_module(x)
    out = xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


@register("Softmax")
class SoftmaxLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        self.axis = canonical_axis(self, self.param.softmax_param.axis, bottom[0].ndim)

    def reshape(self, bottom, top):
        if top[0] is not bottom[0]:
            top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        softmax(bottom[0].data, self.axis, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y, dy = top[0].data, top[0].diff
            bottom[0].diff[...] = (dy - (dy * y).sum(axis=self.axis, keepdims=True)) * y
