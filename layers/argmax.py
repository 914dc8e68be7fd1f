"""ArgMax layer ("ArgMax"): the top_k largest values along `axis`, as indices (stored as floats) or values.
Semantics: caffe argmax_layer.cpp.

Caffe sorts (value, index) pairs in descending order, so among equal values the highest index comes first
(numpy's argmax picks the lowest). With `axis` the top has top_k entries along it, holding indices, or only the
values when out_max_val is set. Without `axis` each item's flattened C*H*W values are ranked and the top is
(N, 1, top_k, 1), or (N, 2, top_k, 1) with out_max_val: indices, then values; a bottom of fewer than 3 axes
gets a 3-axis top, more axes get trailing 1s. Forward only: Caffe has no gradient here.
"""
import numpy

from layers import backend
from layers.base import Layer
from layers.registry import register
from layers.softmax import canonical_axis


def top_k_descending(x, k, axis):
    """Indices of the k largest entries along `axis`, largest first, the higher index first among equals."""
    xp = backend.get_array_module(x)
    n = x.shape[axis]
    if k == 1:                                   # the highest index holding the maximum
        shape = [1] * x.ndim
        shape[axis] = n
        index = xp.arange(n).reshape(shape)
        return xp.where(x == x.max(axis=axis, keepdims=True), index, -1).max(axis=axis, keepdims=True)
    flipped = xp.flip(x, axis=axis)              # equal values: the higher original index now comes first
    # CuPy's argsort is always stable (and older versions take no `kind`)
    order = xp.argsort(-flipped, axis=axis, kind="stable") if xp is numpy else xp.argsort(-flipped, axis=axis)
    return (n - 1) - xp.take(order, xp.arange(k), axis=axis)


@register("ArgMax")
class ArgMaxLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.argmax_param
        self.out_max_val = p.out_max_val
        self.top_k = p.top_k
        if self.top_k < 1:
            raise self.error("argmax_param.top_k must be at least 1")
        self.axis = canonical_axis(self, p.axis, bottom[0].ndim) if p.HasField("axis") else None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if self.axis is not None:
            if self.top_k > shape[self.axis]:
                raise self.error(f"top_k {self.top_k} is more than the {shape[self.axis]} entries along "
                                 f"axis {self.axis} of the bottom {shape}")
            out = list(shape)
            out[self.axis] = self.top_k
        else:
            per_item = int(numpy.prod(shape[1:]))
            if self.top_k > per_item:
                raise self.error(f"top_k {self.top_k} is more than the {per_item} values of each item of the "
                                 f"bottom {shape}")
            out = [1] * max(len(shape), 3)
            out[0] = shape[0]
            out[1] = 2 if self.out_max_val else 1
            out[2] = self.top_k
        top[0].reshape(*out)

    def forward(self, bottom, top):
        x = bottom[0].data
        xp = self.xp(bottom[0])
        if self.axis is not None:
            index = top_k_descending(x, self.top_k, self.axis)
            if self.out_max_val:
                top[0].data[...] = xp.take_along_axis(x, index, axis=self.axis)
            else:
                top[0].data[...] = index
            return
        flat = x.reshape(x.shape[0], -1)
        index = top_k_descending(flat, self.top_k, 1)                       # (N, top_k)
        out = top[0].data.reshape(x.shape[0], -1, self.top_k)
        out[:, 0] = index
        if self.out_max_val:
            out[:, 1] = xp.take_along_axis(flat, index, axis=1)

    def backward(self, top, propagate_down, bottom):
        if any(propagate_down):
            raise self.error("ArgMax has no gradient; set propagate_down: false for its bottom")
