"""Crop offsets computed from the net's geometry (cf. caffe/python/caffe/coord_map.py, BVLC PR #3613).

Every spatial layer maps coordinates affinely, per spatial axis: a position x in its bottom corresponds to
position a*x + b in its top. For a kernel k (dilated: (k-1)*d + 1), stride s and pad p:

    Convolution, Pooling:  a = 1/s,  b = (p - (k-1)/2) / s      (a top pixel sits at its window's centre)
    Deconvolution:         a = s,    b = (k-1)/2 - p
    Crop:                  a = 1,    b = -offset                 (only the cropped bottom[0] is mapped)
    ReLU, Dropout, Eltwise, LRN, Scale, ...:  the identity

A map is a tuple (axis, a, b): `axis` is the first spatial axis it applies to (None for the identity,
which fits any axis) and a, b are tuples of exact Fractions, one per spatial axis or one for all.
crop(top_from, top_to) walks both tops back to a common ancestor, composing the maps on the way, and maps
top_from's coordinates onto top_to's. A crop exists only when that map is a pure shift (a = 1) by a
whole, non-positive number of pixels; the Crop layer then starts its window at offset -b.
(Caffe's own map axis is the one before the spatial axes; here it is the crop axis itself. Concat along the
channel axis also passes coordinates through here; Caffe leaves it out.)
"""
import collections
from fractions import Fraction

from netspec.errors import NetDefinitionError
from netspec.geometry import pair_or_repeated
from netspec.spec import Function, Top, layers as L

__all__ = ["PASS_THROUGH_LAYERS", "AxisMismatchError", "CropError", "UndefinedMapError", "UnrelatedTopsError",
           "coord_map", "compose", "inverse", "coord_map_from_to", "crop", "crop_offsets"]

PASS_THROUGH_LAYERS = frozenset([
    "AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN", "Exp", "MVN", "Power",
    "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH", "Threshold",
])
IDENTITY = (None, (Fraction(1),), (Fraction(0),))


class UndefinedMapError(NetDefinitionError):
    """A layer whose output coordinates have no affine relation to its input's (InnerProduct, global pooling)."""


class AxisMismatchError(NetDefinitionError):
    """Two maps that work on different spatial axes cannot be composed (pycaffe's AxisMismatchException)."""


# The two below are also the built-in exceptions pycaffe's coord_map raises in these cases, so that code written
# against pycaffe catches them.
class UnrelatedTopsError(NetDefinitionError, RuntimeError):
    """The tops share no ancestor reachable through spatial layers."""


class CropError(NetDefinitionError, AssertionError):
    """No Crop aligns the tops: their scales differ, or the offset is fractional or negative."""


def _vector(values, what):
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    if not values:
        raise ValueError(f"coord_map: {what} is empty")
    return tuple(Fraction(v) for v in values)


def _broadcast(*vectors):
    n = max(len(v) for v in vectors)
    if any(len(v) not in (1, n) for v in vectors):
        raise NetDefinitionError(f"coord_map: per-axis values of different lengths cannot be combined: "
                                 f"{[tuple(str(x) for x in v) for v in vectors]}")
    return [v * n if len(v) == 1 else v for v in vectors]


def _geometry(fn, lp):
    """(axis, kernel, stride, pad) of a Convolution, Deconvolution, Im2col or Pooling layer; dilation applied."""
    if fn.type_name == "Pooling":
        p = lp.pooling_param
        if p.global_pooling:
            raise UndefinedMapError("coord_map: Pooling with global_pooling has no coordinate map")
        axis, dilation = 2, (1,)
    else:
        p = lp.convolution_param
        if p.axis < 0:
            raise NetDefinitionError(f"coord_map: {fn.type_name} convolution_param.axis {p.axis} is negative; "
                                     f"give the channel axis as a non-negative index to compute crops")
        axis, dilation = p.axis + 1, tuple(p.dilation) or (1,)
    kernel = pair_or_repeated(p, "kernel", None)
    if not kernel or 0 in kernel:
        raise NetDefinitionError(f"coord_map: {fn.type_name} layer has no kernel size (kernel_size or "
                                 f"kernel_h/kernel_w)")
    stride = pair_or_repeated(p, "stride", 1)
    pad = pair_or_repeated(p, "pad", 0)
    kernel, dilation, stride, pad = _broadcast(_vector(kernel, "kernel"), _vector(dilation, "dilation"),
                                               _vector(stride, "stride"), _vector(pad, "pad"))
    extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    return axis, extent, stride, pad


def coord_map(fn):
    """The coordinate map (axis, a, b) of one layer (a Function, or a Top's layer): x_top = a*x_bottom + b."""
    fn = fn.fn if isinstance(fn, Top) else fn
    if not isinstance(fn, Function):
        raise TypeError(f"coord_map takes a Function or a Top, got {type(fn).__name__}")
    lp = fn.layer_param()
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, k, s, p = _geometry(fn, lp)
        return axis, tuple(1 / si for si in s), tuple((pi - (ki - 1) / 2) / si for ki, si, pi in zip(k, s, p))
    if fn.type_name == "Deconvolution":
        axis, k, s, p = _geometry(fn, lp)
        return axis, s, tuple((ki - 1) / 2 - pi for ki, pi in zip(k, p))
    if fn.type_name == "Crop":
        c = lp.crop_param
        if c.axis < 0:
            raise NetDefinitionError(f"coord_map: Crop crop_param.axis {c.axis} is negative; give a non-negative "
                                     f"axis to compute crops")
        offsets = _vector(list(c.offset) or [0], "crop_param.offset")
        return c.axis, (Fraction(1),) * len(offsets), tuple(-o for o in offsets)
    if fn.type_name in PASS_THROUGH_LAYERS:
        return IDENTITY
    if fn.type_name == "Concat":
        c = lp.concat_param
        concat_axis = c.concat_dim if c.HasField("concat_dim") else c.axis
        if 0 <= concat_axis <= 1:                     # stacking channels (or images) keeps every pixel in place
            return IDENTITY
    raise UndefinedMapError(f"coord_map: {fn.type_name} layers have no coordinate map")


def compose(base_map, next_map):
    """base_map after next_map: x -> a1*(a2*x + b2) + b1. The axes must agree (None agrees with any)."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        ax = ax2
    elif ax2 is None or ax1 == ax2:
        ax = ax1
    else:
        raise AxisMismatchError(f"coord_map: cannot compose maps on spatial axes from {ax1} and from {ax2}; "
                                f"the layers must work on the same axes")
    a1, b1, a2, b2 = _broadcast(_vector(a1, "a"), _vector(b1, "b"), _vector(a2, "a"), _vector(b2, "b"))
    return ax, tuple(x * y for x, y in zip(a1, a2)), tuple(x * y + z for x, y, z in zip(a1, b2, b1))


def inverse(coord_map):
    """The inverse map: x = (y - b) / a."""
    ax, a, b = coord_map
    a, b = _broadcast(_vector(a, "a"), _vector(b, "b"))
    return ax, tuple(1 / x for x in a), tuple(-y / x for x, y in zip(a, b))


def _ancestor_maps(top):
    """{ancestor Top: map from its coordinates to `top`'s}, breadth first, plus the layers the walk stopped at."""
    maps = {top: IDENTITY}
    stopped = []
    queue = collections.deque([top])
    while queue:
        current = queue.popleft()
        fn = current.fn
        bottoms = fn.inputs[:1] if fn.type_name == "Crop" else fn.inputs   # Crop's bottom[1] lends only a shape
        if not bottoms:
            continue
        try:
            step = coord_map(fn)
        except UndefinedMapError:
            stopped.append(fn.type_name)
            continue
        for bottom in bottoms:
            if bottom not in maps:                    # first (shortest) path wins, as in a consistent net all agree
                maps[bottom] = compose(maps[current], step)
                queue.append(bottom)
    return maps, stopped


def coord_map_from_to(top_from, top_to):
    """The map from top_from's coordinates to top_to's, through their nearest common ancestor."""
    for top in (top_from, top_to):
        if not isinstance(top, Top):
            raise TypeError(f"crop and coord_map_from_to take Tops (layer outputs), got {type(top).__name__}")
    pair = f"crop({top_from.describe()}, {top_to.describe()})"
    try:
        from_maps, stopped = _ancestor_maps(top_from)
        found = _first_common(top_to, from_maps, stopped)
    except NetDefinitionError as e:                   # e.g. layers on different axes: say which crop met it
        raise type(e)(f"{pair}: {e}") from None
    if found is None:
        where = sorted(set(stopped))
        why = f"; the walk stopped at layers with no coordinate map: {', '.join(where)}" if where else ""
        raise UnrelatedTopsError(f"{pair}: the two tops share no ancestor reachable through spatial layers, so "
                                 f"their coordinates cannot be related{why}")
    return found


def _first_common(top_to, from_maps, stopped):
    """Walk back from top_to, breadth first, to the first top in from_maps; compose the map through it."""
    to_maps = {top_to: IDENTITY}
    queue = collections.deque([top_to])
    while queue:
        current = queue.popleft()
        if current in from_maps:
            return compose(to_maps[current], inverse(from_maps[current]))
        fn = current.fn
        bottoms = fn.inputs[:1] if fn.type_name == "Crop" else fn.inputs
        if not bottoms:
            continue
        try:
            step = coord_map(fn)
        except UndefinedMapError:
            stopped.append(fn.type_name)
            continue
        for bottom in bottoms:
            if bottom not in to_maps:
                to_maps[bottom] = compose(to_maps[current], step)
                queue.append(bottom)
    return None


def _show(values):
    return ", ".join(str(v) for v in values)


def crop_offsets(top_from, top_to):
    """(axis, offsets): where a Crop of top_from to top_to's shape must start, per spatial axis."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    pair = f"crop({top_from.describe()}, {top_to.describe()})"
    if any(x != 1 for x in a):
        raise CropError(f"{pair}: the tops are at different scales (top_to = {_show(a)} x top_from); "
                                 f"a crop only shifts, so upsample or downsample one of them first")
    if any(x.denominator != 1 for x in b):
        raise CropError(f"{pair}: the tops are misaligned by a fraction of a pixel (shift {_show(b)}); "
                                 f"no integer offset exists: change a kernel, stride or pad on their paths")
    if any(x > 0 for x in b):
        raise CropError(f"{pair}: the offset would be negative ({_show(-x for x in b)}): top_to starts "
                                 f"outside top_from, so top_from cannot be cropped to it; pad top_from's path more "
                                 f"(FCN pads conv1_1 by 100) or swap the tops")
    offsets = [int(-x) for x in b]
    if len(set(offsets)) == 1:
        offsets = offsets[:1]                         # one offset serves every spatial axis
    return (2 if ax is None else ax), offsets


def crop(top_from, top_to):
    """A Crop layer cutting top_from to top_to's shape, at the offset that aligns their coordinates."""
    axis, offsets = crop_offsets(top_from, top_to)
    return L.Crop(top_from, top_to, crop_param=dict(axis=axis, offset=offsets))
