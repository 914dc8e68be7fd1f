"""Parameter layer ("Parameter"): no bottoms; its one top is its learned blob, of parameter_param.shape (zeros
until set or loaded). Semantics: caffe parameter_layer.hpp, whose top shares the blob's data and diff: here the
top gets a copy of the blob and backward adds the top's diff to the blob's, the same numbers."""
from layers.base import Layer
from layers.registry import register


@register("Parameter")
class ParameterLayer(Layer):
    exact_num_bottom = 0
    exact_num_top = 1

    def setup(self, bottom, top):
        if not self.blobs:
            self.add_param_blob(tuple(self.param.parameter_param.shape.dim), top[0].dtype)

    def reshape(self, bottom, top):
        top[0].reshape(*self.blobs[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data

    def backward(self, top, propagate_down, bottom):
        if self.param_propagate_down[0]:
            self.blobs[0].diff += top[0].diff
