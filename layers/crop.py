"""Crop layer ("Crop"): crop bottom[0] to bottom[1]'s shape from `axis` on, starting at the given offsets.
Semantics: caffe crop_layer.cpp. Axes before `axis` are kept whole; one offset applies to every cropped axis,
several give one per axis; no offset means 0. The reference bottom[1] never gets a gradient."""
from layers.base import Layer
from layers.registry import register
from layers.softmax import canonical_axis


@register("Crop")
class CropLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.crop_param
        self.axis = canonical_axis(self, p.axis, bottom[0].ndim)
        n = bottom[0].ndim - self.axis
        if len(p.offset) not in (0, 1, n):
            raise self.error(f"crop_param.offset needs 0, 1 or {n} values (one per axis from axis {self.axis} of "
                             f"a {bottom[0].ndim}-D bottom), got {len(p.offset)}")
        self.offsets = list(p.offset) * n if len(p.offset) == 1 else list(p.offset) or [0] * n

    def reshape(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("cannot crop in place; give the top its own name")
        if bottom[1].ndim < bottom[0].ndim:
            raise self.error(f"the reference bottom[1] {bottom[1].shape} has fewer axes than bottom[0] "
                             f"{bottom[0].shape}")
        want = bottom[1].shape[self.axis:bottom[0].ndim]
        have = bottom[0].shape[self.axis:]
        for i, (o, s, size) in enumerate(zip(self.offsets, want, have)):
            if o + s > size:
                raise self.error(f"crop of axis {self.axis + i} is out of bounds: offset {o} + size {s} "
                                 f"(bottom[1] {bottom[1].shape}) exceeds bottom[0]'s size {size} "
                                 f"(bottom[0] {bottom[0].shape}); use a smaller offset or a larger bottom[0]")
        self.window = (slice(None),) * self.axis + tuple(slice(o, o + s) for o, s in zip(self.offsets, want))
        top[0].reshape(*bottom[0].shape[:self.axis], *want)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data[self.window]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 0
            bottom[0].diff[self.window] = top[0].diff
        if propagate_down[1]:
            bottom[1].diff[...] = 0          # the reference only lends its shape (Caffe leaves it at zero)
