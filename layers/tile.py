"""Tile layer ("Tile"): repeat the block of axes from `axis` on `tiles` times along `axis`
((2,3,5) with axis 1, tiles 2 -> (2,6,5), channels 0,1,2,0,1,2); the bottom's gradient sums the copies.
Semantics: caffe tile_layer.cpp."""
import math

from layers.base import Layer
from layers.registry import register
from layers.softmax import canonical_axis


@register("Tile")
class TileLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.tile_param
        if not p.HasField("tiles") or p.tiles <= 0:
            raise self.error("tile_param.tiles must be given and positive")
        self.tiles = p.tiles

    def reshape(self, bottom, top):
        shape = list(bottom[0].shape)
        axis = canonical_axis(self, self.param.tile_param.axis, len(shape))
        self.outer, self.inner = math.prod(shape[:axis]), math.prod(shape[axis:])
        shape[axis] *= self.tiles
        top[0].reshape(*shape)

    def forward(self, bottom, top):
        top[0].data.reshape(self.outer, self.tiles, self.inner)[...] = bottom[0].data.reshape(self.outer, 1, -1)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dy = top[0].diff.reshape(self.outer, self.tiles, self.inner)
            bottom[0].diff[...] = dy.sum(axis=1).reshape(bottom[0].shape)
