"""Silence layer ("Silence"): consume bottoms that nothing else uses, so they are not net outputs.
Semantics: caffe silence_layer.cpp: no tops, no forward work; backward writes zero diffs into its bottoms."""
from layers.base import Layer
from layers.registry import register


@register("Silence")
class SilenceLayer(Layer):
    min_num_bottom = 1
    exact_num_top = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for b, down in zip(bottom, propagate_down):
            if down:
                b.diff[...] = 0
