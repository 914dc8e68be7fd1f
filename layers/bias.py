"""Bias layer ("Bias"): top = bottom[0] + b, with b broadcast over the axes it does not span.
Semantics: caffe bias_layer.cpp. b is either a learned param of shape bottom[0].shape[axis:axis+num_axes]
(num_axes -1: to the end; 0: a scalar), filled by bias_param.filler (default constant 0), or a second bottom whose
shape matches bottom[0]'s from `axis` on. The param's gradient accumulates; a bottom's is assigned.
The shape helpers here are shared with Scale."""
from layers import fillers
from layers.base import Layer
from layers.registry import register
from layers.softmax import canonical_axis


def param_shape(layer, bottom_shape, axis, num_axes, what):
    """The shape of a learned Scale/Bias param: bottom_shape[axis:axis+num_axes] (num_axes -1: to the end)."""
    if num_axes < -1:
        raise layer.error(f"num_axes must be >= 0, or -1 to extend to the end of bottom[0]; got {num_axes}")
    if num_axes >= 0 and axis + num_axes > len(bottom_shape):
        raise layer.error(f"the {what} spans axes {axis}..{axis + num_axes - 1}, past the end of bottom[0] "
                          f"{tuple(bottom_shape)}; lower axis or num_axes")
    return tuple(bottom_shape[axis:]) if num_axes == -1 else tuple(bottom_shape[axis:axis + num_axes])


def broadcast(layer, bottom_shape, shape, axis_param, what):
    """Caffe's Scale/Bias Reshape checks. Returns (view shape of the factor, axes to sum its gradient over)."""
    ndim, k = len(bottom_shape), len(shape)
    axis = 0 if k == 0 else canonical_axis(layer, axis_param, ndim)   # a scalar applies anywhere
    if axis + k > ndim:
        raise layer.error(f"the {what} of shape {tuple(shape)} extends past bottom[0]'s shape {tuple(bottom_shape)} "
                          f"when applied from axis {axis}")
    if tuple(bottom_shape[axis:axis + k]) != tuple(shape):
        raise layer.error(f"dimension mismatch: the {what} has shape {tuple(shape)} but bottom[0] "
                          f"{tuple(bottom_shape)} has {tuple(bottom_shape[axis:axis + k])} on axes from {axis}")
    view = (1,) * axis + tuple(shape) + (1,) * (ndim - axis - k)
    reduce = tuple(i for i in range(ndim) if not axis <= i < axis + k)
    return view, reduce


def sum_to(x, axes, shape):
    """A factor's gradient: x summed over the broadcast axes (none when the factor spans all of bottom[0])."""
    return (x.sum(axis=axes) if axes else x.copy()).reshape(shape)


@register("Bias")
class BiasLayer(Layer):
    min_num_bottom = 1
    max_num_bottom = 2
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.bias_param
        if len(bottom) == 1 and not self.blobs:      # b is a learned param
            axis = canonical_axis(self, p.axis, bottom[0].ndim)
            shape = param_shape(self, bottom[0].shape, axis, p.num_axes, "bias")
            dtype = bottom[0].dtype
            self.add_param_blob(shape, dtype, fillers.fill(p.filler, shape, dtype))

    def _bias(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        self.view, self.reduce = broadcast(self, bottom[0].shape, self._bias(bottom).shape,
                                           self.param.bias_param.axis, "bias")
        if top[0] is not bottom[0]:
            top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        b = self._bias(bottom).data.reshape(self.view)
        if top[0] is bottom[0]:
            top[0].data[...] += b
        else:
            top[0].data[...] = bottom[0].data + b

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        bias = self._bias(bottom)
        if len(bottom) == 1 and self.param_propagate_down[0]:
            bias.diff += sum_to(dy, self.reduce, bias.shape)
        elif len(bottom) == 2 and propagate_down[1]:
            bias.diff[...] = sum_to(dy, self.reduce, bias.shape)
        if propagate_down[0] and top[0] is not bottom[0]:
            bottom[0].diff[...] = dy
