"""Embed layer ("Embed"): look up rows of a learned (input_dim, num_output) table by the integer values of the
bottom: top shape = bottom shape + (num_output,), plus a learned bias with bias_term (default). The weight's
gradient adds each top row's diff to the row it came from. Semantics: caffe embed_layer.cpp; the indices get no
gradient (Caffe aborts when asked for one; force_backward leaves them out)."""
from layers import fillers
from layers.base import Layer
from layers.registry import register


def checked_indices(layer, blob, limit, what):
    """A blob's values as integer indices (truncated, as static_cast<int>); each must be a whole number in
    [0, limit), else the layer's error."""
    x = blob.data
    xp = layer.xp(blob)
    index = x.astype(xp.int64)
    bad = (index < 0) | (index >= limit) | (index != x)
    if bool(bad.any()):
        value = float(x.reshape(-1)[int(xp.flatnonzero(bad.reshape(-1))[0])])
        raise layer.error(f"{what} {value:g} is not a whole number in [0, {limit})")
    return index


@register("Embed")
class EmbedLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.embed_param
        if p.num_output <= 0 or p.input_dim <= 0:
            raise self.error("embed_param.num_output and input_dim must be set and positive")
        self.num_output, self.input_dim, self.bias_term = p.num_output, p.input_dim, p.bias_term
        if not self.blobs:
            dtype = bottom[0].dtype
            shape = (self.input_dim, self.num_output)
            self.add_param_blob(shape, dtype, fillers.fill(p.weight_filler, shape, dtype))
            if self.bias_term:
                shape = (self.num_output,)
                self.add_param_blob(shape, dtype, fillers.fill(p.bias_filler, shape, dtype))

    def allow_force_backward(self, bottom_index):
        return False

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape, self.num_output)

    def forward(self, bottom, top):
        self.index = checked_indices(self, bottom[0], self.input_dim, "index").reshape(-1)
        y = self.blobs[0].data[self.index]
        if self.bias_term:
            y += self.blobs[1].data
        top[0].data[...] = y.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error("cannot back-propagate to the indices (bottom 0); set propagate_down: false")
        dy = top[0].diff.reshape(-1, self.num_output)
        if self.param_propagate_down[0]:
            self.xp(top[0]).add.at(self.blobs[0].diff, self.index, dy)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff += dy.sum(axis=0)
