"""Flatten layer ("Flatten"): merge axes axis..end_axis (default 1..-1) into one; the data is unchanged.
Semantics: caffe flatten_layer.cpp ((2, 8, 7, 9) -> (2, 504)). Not in place."""
import math

from layers.base import Layer
from layers.registry import register
from layers.softmax import canonical_axis


@register("Flatten")
class FlattenLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("cannot flatten in place; give the top its own name")
        p = self.param.flatten_param
        shape = bottom[0].shape
        start = canonical_axis(self, p.axis, len(shape))
        end = canonical_axis(self, p.end_axis, len(shape))
        if end < start:
            raise self.error(f"end_axis {p.end_axis} comes before axis {p.axis} for bottom shape {shape}")
        top[0].reshape(*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff.reshape(bottom[0].shape)
