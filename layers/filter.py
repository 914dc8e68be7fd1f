"""Filter layer ("Filter"): keep the items (axis 0) of each bottom whose selector value, the last bottom's, is
nonzero; one top per other bottom. The gradient scatters the top diffs back, dropped items get 0.
Semantics: caffe filter_layer.cpp: at setup the tops hold every item, each later reshape the selected ones (maybe
none); the selector gets no gradient (Caffe aborts when asked for one; force_backward leaves it out)."""
import numpy

from layers import backend
from layers.base import Layer
from layers.registry import register


@register("Filter")
class FilterLayer(Layer):
    min_num_bottom = 2
    min_num_top = 1

    def setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            raise self.error(f"needs one top per filtered bottom: {len(bottom) - 1} top(s), got {len(top)}")
        self.first_reshape = True

    def allow_force_backward(self, bottom_index):
        return bottom_index != len(self.param.bottom) - 1

    def reshape(self, bottom, top):
        selector = bottom[-1]
        if any(s != 1 for s in selector.shape[1:]):
            raise self.error(f"the selector's axes after the first must be 1, got shape {selector.shape}")
        for i, b in enumerate(bottom[:-1]):
            if b.shape[0] != selector.shape[0]:
                raise self.error(f"bottom {i} has {b.shape[0]} items, the selector {selector.shape[0]}")
        self.indices = numpy.flatnonzero(backend.to_cpu(selector.data).reshape(-1))
        n = bottom[0].shape[0] if self.first_reshape else len(self.indices)
        self.first_reshape = False
        for t, b in zip(top, bottom):
            t.reshape(n, *b.shape[1:])

    def forward(self, bottom, top):
        index = self.xp(bottom[0]).asarray(self.indices)
        for t, b in zip(top, bottom):
            t.data[...] = b.data[index]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[-1]:
            raise self.error("cannot back-propagate to the selector (the last bottom); set propagate_down: false")
        index = self.xp(top[0]).asarray(self.indices)
        for t, b, down in zip(top, bottom, propagate_down):
            if down:
                b.diff[...] = 0
                b.diff[index] = t.diff
