"""Reshape layer ("Reshape"): give the data a new shape without changing it. Semantics: caffe reshape_layer.cpp.
reshape_param.shape replaces the bottom axes axis..axis+num_axes (default all); in it a 0 copies the bottom's
size on that axis and one -1 is inferred from the count. A negative axis counts from the end, -1 meaning after
the last axis. Not in place."""
import math

from layers.base import Layer
from layers.registry import register


@register("Reshape")
class ReshapeLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        dims = list(self.param.reshape_param.shape.dim)
        if dims.count(-1) > 1:
            raise self.error(f"reshape_param.shape {dims} has more than one -1; at most one size can be inferred")
        if any(d < -1 for d in dims):
            raise self.error(f"reshape_param.shape {dims}: sizes must be >= 0 (0 copies, -1 infers)")
        self.dims = dims

    def reshape(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("cannot reshape in place; give the top its own name")
        p = self.param.reshape_param
        shape = bottom[0].shape
        ndim = len(shape)
        start = p.axis if p.axis >= 0 else ndim + p.axis + 1
        if not 0 <= start <= ndim:
            raise self.error(f"reshape_param.axis {p.axis} is out of range for bottom shape {shape}")
        if p.num_axes < -1:
            raise self.error(f"reshape_param.num_axes must be >= 0, or -1 for all; got {p.num_axes}")
        end = ndim if p.num_axes == -1 else start + p.num_axes
        if end > ndim:
            raise self.error(f"axis {p.axis} + num_axes {p.num_axes} runs past the end of bottom shape {shape}")
        new = []
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= ndim:
                    raise self.error(f"reshape_param.shape {self.dims} has a 0 at position {i} but bottom shape "
                                     f"{shape} has no axis {start + i} to copy")
                d = shape[start + i]
            new.append(d)
        new = list(shape[:start]) + new + list(shape[end:])
        if -1 in new:
            known = math.prod(d for d in new if d != -1)
            if known == 0 or math.prod(shape) % known:
                raise self.error(f"cannot infer the -1 in {self.dims}: bottom count {math.prod(shape)} "
                                 f"(shape {shape}) is not divisible by the other sizes' product {known}")
            new[new.index(-1)] = math.prod(shape) // known
        if math.prod(new) != math.prod(shape):
            raise self.error(f"the new shape {tuple(new)} has {math.prod(new)} values, bottom {shape} has "
                             f"{math.prod(shape)}")
        top[0].reshape(*new)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff.reshape(bottom[0].shape)
