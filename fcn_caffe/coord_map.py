"""caffe.coord_map: pycaffe's coordinate maps and crop(), on the engine's netspec.coord_map.

A map is (axis, a, b): x_top = a * x_bottom + b on the spatial axes after `axis`, which is the axis before them
(1 for N x C x H x W; None for the identity, which fits any), with a and b numpy arrays of one value per spatial
axis, or one for all. crop(top_from, top_to) makes the Crop layer at axis + 1 with one offset per value of b.

The maps are the engine's, computed exactly (fractions) and given in pycaffe's convention. Misuse raises pycaffe's
exceptions with pycaffe's messages (the engine's explanation is chained to them): RuntimeError for tops that no
spatial layers connect, AssertionError for a crop that cannot be (scales differ, a negative or fractional offset),
AxisMismatchException and UndefinedMapException. Beyond pycaffe, kernels given as kernel_h/kernel_w and Concat
along the channels map too.
"""
import numpy

from netspec import coord_map as exact
from netspec.spec import layers as L

PASS_THROUGH_LAYERS = sorted(exact.PASS_THROUGH_LAYERS)
UndefinedMapException = exact.UndefinedMapError
AxisMismatchException = exact.AxisMismatchError


def _pycaffe(exact_map):
    """(spatial axis, Fractions, Fractions) -> (axis before it, float arrays); the identity -> (None, 1.0, 0.0)."""
    axis, a, b = exact_map
    if axis is None:
        return None, float(a[0]), float(b[0])
    return axis - 1, numpy.array([float(x) for x in a]), numpy.array([float(x) for x in b])


def coord_map(fn):
    """The map of one layer (a Function): (axis, scale, shift)."""
    return _pycaffe(exact.coord_map(fn))


def compose(base_map, next_map):
    """base_map after next_map: scales multiply, and next_map's shift is scaled by base_map's scale."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is not None and ax2 is not None and ax1 != ax2:
        raise AxisMismatchException(f"coord_map: cannot compose maps on axes {ax1} and {ax2}")
    return (ax2 if ax1 is None else ax1), a1 * a2, a1 * b2 + b1


def inverse(coord_map):
    """The map back: x = (y - b) / a."""
    ax, a, b = coord_map
    return ax, 1 / a, -b / a


def coord_map_from_to(top_from, top_to):
    """The map from top_from's coordinates to top_to's, through their nearest common ancestor."""
    try:
        return _pycaffe(exact.coord_map_from_to(top_from, top_to))
    except exact.UnrelatedTopsError as e:
        raise RuntimeError("Could not compute map between tops; are they connected by spatial layers?") from e


def crop(top_from, top_to):
    """A Crop layer cutting top_from to top_to's shape, at the offset that aligns their coordinates."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    a, b = numpy.atleast_1d(a), numpy.atleast_1d(b)
    if not (a == 1).all():
        raise AssertionError(f"scale mismatch on crop (a = {a})")
    if not (b <= 0).all():
        raise AssertionError(f"cannot crop negative offset (b = {b})")
    if not (numpy.round(b) == b).all():
        raise AssertionError(f"cannot crop noninteger offset (b = {b})")
    return L.Crop(top_from, top_to, crop_param=dict(axis=ax + 1, offset=[int(-x) for x in b]))
