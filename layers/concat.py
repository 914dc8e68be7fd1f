"""Concat layer ("Concat"): join bottoms along `axis` (default 1, channels; legacy concat_dim). All other axes
must agree. Semantics: caffe concat_layer.cpp; each bottom's gradient is its slice of the top diff."""
from layers.base import Layer
from layers.registry import register
from layers.softmax import canonical_axis


@register("Concat")
class ConcatLayer(Layer):
    min_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.concat_param
        if p.HasField("axis") and p.HasField("concat_dim"):
            raise self.error("give either concat_param.axis or the legacy concat_dim, not both")

    def reshape(self, bottom, top):
        p = self.param.concat_param
        ndim = bottom[0].ndim
        if p.HasField("concat_dim"):
            if p.concat_dim >= ndim:
                raise self.error(f"concat_dim {p.concat_dim} is out of range for {ndim}-D bottoms")
            self.axis = p.concat_dim
        else:
            self.axis = canonical_axis(self, p.axis, ndim)
        shape = list(bottom[0].shape)
        for i, b in enumerate(bottom[1:], 1):
            others = [s for j, s in enumerate(b.shape) if j != self.axis]
            if b.ndim != ndim or others != [s for j, s in enumerate(shape) if j != self.axis]:
                raise self.error(f"bottoms must have the same shape except on axis {self.axis}: bottom[0] "
                                 f"'{self.param.bottom[0]}' is {bottom[0].shape}, bottom[{i}] "
                                 f"'{self.param.bottom[i]}' is {b.shape}")
            shape[self.axis] += b.shape[self.axis]
        if top[0] is bottom[0]:
            raise self.error("cannot concatenate in place; give the top its own name")
        top[0].reshape(*shape)
        self.slices, start = [], 0
        for b in bottom:
            end = start + b.shape[self.axis]
            self.slices.append((slice(None),) * self.axis + (slice(start, end),))
            start = end

    def forward(self, bottom, top):
        for b, window in zip(bottom, self.slices):
            top[0].data[window] = b.data

    def backward(self, top, propagate_down, bottom):
        for b, window, down in zip(bottom, self.slices, propagate_down):
            if down:
                b.diff[...] = top[0].diff[window]
