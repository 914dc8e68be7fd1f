"""Split layer ("Split"): one blob to several consumers; the tops share the bottom's data and the bottom's
gradient is the sum of theirs. Inserted automatically by netspec.splits, as Caffe's insert_splits does."""
from layers.base import Layer
from layers.registry import register


@register("Split")
class SplitLayer(Layer):
    exact_num_bottom = 1
    min_num_top = 1

    def reshape(self, bottom, top):
        for t in top:
            if t is bottom[0]:
                raise self.error("a Split top cannot be its bottom (in place)")
            t.share_data(bottom[0])

    def forward(self, bottom, top):
        for t in top:
            t.share_data(bottom[0])          # the bottom may have been reallocated by a reshape

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        diff = bottom[0].diff
        diff[...] = top[0].diff
        for t in top[1:]:
            diff += t.diff
