"""Scale layer ("Scale"): top = bottom[0] * s (+ b), with s broadcast over the axes it does not span.
Semantics: caffe scale_layer.cpp. s is a learned param of shape bottom[0].shape[axis:axis+num_axes], filled by
scale_param.filler (default constant 1), or a second bottom. bias_term adds a learned b (bias_filler, default
constant 0) shaped as Bias would shape it: over the second bottom's axes, or axis/num_axes. FCN-8s at-once fixes
s at 0.01 / 1e-4 with lr_mult 0. Param gradients accumulate (Caffe overwrites the scale diff when s is as large
as bottom[0]; accumulating gives the same value after Net.clear_param_diffs)."""
from layers import fillers
from layers.base import Layer
from layers.bias import broadcast, param_shape, sum_to
from layers.registry import register
from layers.softmax import canonical_axis
from netspec import caffe_pb2


@register("Scale")
class ScaleLayer(Layer):
    min_num_bottom = 1
    max_num_bottom = 2
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.scale_param
        self.bias_term = p.bias_term
        if self.blobs:                               # params copied or shared in already
            return
        dtype = bottom[0].dtype
        if len(bottom) == 1:
            axis = canonical_axis(self, p.axis, bottom[0].ndim)
            shape = param_shape(self, bottom[0].shape, axis, p.num_axes, "scale")
            filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(type="constant", value=1)
            self.add_param_blob(shape, dtype, fillers.fill(filler, shape, dtype))
        if self.bias_term:
            axis = canonical_axis(self, p.axis, bottom[0].ndim)
            num_axes = bottom[1].ndim if len(bottom) > 1 else p.num_axes
            shape = param_shape(self, bottom[0].shape, axis, num_axes, "bias")
            self.add_param_blob(shape, dtype, fillers.fill(p.bias_filler, shape, dtype))

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        axis = self.param.scale_param.axis
        self.view, self.reduce = broadcast(self, bottom[0].shape, self._scale(bottom).shape, axis, "scale")
        if self.bias_term:
            self.bias_view, self.bias_reduce = broadcast(self, bottom[0].shape, self.blobs[-1].shape, axis, "bias")
        if top[0] is not bottom[0]:
            top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        if top[0] is bottom[0] and self.need_backward:
            self.saved_bottom = x.copy()         # in place: backward needs the input that is overwritten here
        self.xp(bottom[0]).multiply(x, self._scale(bottom).data.reshape(self.view), out=top[0].data)
        if self.bias_term:
            top[0].data[...] += self.blobs[-1].data.reshape(self.bias_view)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        if self.bias_term and self.param_propagate_down[-1]:
            self.blobs[-1].diff += sum_to(dy, self.bias_reduce, self.blobs[-1].shape)
        scale = self._scale(bottom)
        learned = len(bottom) == 1
        if (learned and self.param_propagate_down[0]) or (not learned and propagate_down[1]):
            x = self.saved_bottom if top[0] is bottom[0] else bottom[0].data
            grad = sum_to(dy * x, self.reduce, scale.shape)
            if learned:
                scale.diff += grad
            else:
                scale.diff[...] = grad
        if propagate_down[0]:
            bottom[0].diff[...] = dy * scale.data.reshape(self.view)
