"""Slice layer ("Slice"): cut bottom[0] along `axis` (default 1; legacy slice_dim) into the tops, at the
slice_points (one fewer than the tops, increasing) or into equal parts. The bottom's gradient is the tops' diffs
put back in place. Semantics: caffe slice_layer.cpp (Concat's inverse)."""
from layers.base import Layer
from layers.registry import register
from layers.softmax import canonical_axis


@register("Slice")
class SliceLayer(Layer):
    exact_num_bottom = 1
    min_num_top = 1

    def setup(self, bottom, top):
        p = self.param.slice_param
        if p.HasField("axis") and p.HasField("slice_dim"):
            raise self.error("give either slice_param.axis or the legacy slice_dim, not both")

    def reshape(self, bottom, top):
        p = self.param.slice_param
        shape, n = list(bottom[0].shape), len(top)
        if p.HasField("slice_dim"):
            if p.slice_dim >= len(shape):
                raise self.error(f"slice_dim {p.slice_dim} is out of range for a {len(shape)}-D bottom")
            axis = p.slice_dim
        else:
            axis = canonical_axis(self, p.axis, len(shape))
        size = shape[axis]
        points = list(p.slice_point)
        if points:
            if len(points) != n - 1:
                raise self.error(f"{n} tops need {n - 1} slice_point values, got {len(points)}")
            if any(b <= a for a, b in zip([0] + points, points)) or points[-1] > size:
                raise self.error(f"slice_point {points} must increase from above 0 to at most the size {size} "
                                 f"of axis {axis}")
        elif size % n:
            raise self.error(f"{n} tops do not evenly divide axis {axis} of size {size}; give slice_point")
        else:
            points = [size // n * i for i in range(1, n)]
        self.windows = []
        for start, end, t in zip([0] + points, points + [size], top):
            if t is bottom[0]:
                raise self.error("cannot slice in place; give each top its own name")
            self.windows.append((slice(None),) * axis + (slice(start, end),))
            t.reshape(*shape[:axis], end - start, *shape[axis + 1:])

    def forward(self, bottom, top):
        for t, window in zip(top, self.windows):
            t.data[...] = bottom[0].data[window]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            for t, window in zip(top, self.windows):
                bottom[0].diff[window] = t.diff
