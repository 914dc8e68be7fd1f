"""BatchReindex layer ("BatchReindex"): top[i] = bottom[0][index[i]] for the 1-D index bottom (repeats allowed);
the gradient adds each top item's diff to the item it came from. Semantics: caffe batch_reindex_layer.cpp; the
indices get no gradient (Caffe aborts when asked for one; force_backward leaves them out)."""
from layers.base import Layer
from layers.embed import checked_indices
from layers.registry import register


@register("BatchReindex")
class BatchReindexLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1

    def reshape(self, bottom, top):
        if bottom[1].ndim != 1:
            raise self.error(f"the index bottom must be 1-D, got shape {bottom[1].shape}")
        top[0].reshape(bottom[1].shape[0], *bottom[0].shape[1:])

    def forward(self, bottom, top):
        self.index = checked_indices(self, bottom[1], bottom[0].shape[0], "index")
        top[0].data[...] = bottom[0].data[self.index]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot back-propagate to the indices (bottom 1); set propagate_down: false")
        if propagate_down[0]:
            bottom[0].diff[...] = 0
            self.xp(top[0]).add.at(bottom[0].diff, self.index, top[0].diff)
