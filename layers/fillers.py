"""Caffe's weight fillers (cf. caffe/filler.hpp): constant, uniform, gaussian (+sparse), positive_unitball,
xavier, msra, bilinear. Values are drawn from layers.rng.filler_rng() unless a generator is given; the
distributions are Caffe's."""
import math

import numpy

from layers.blob import check_size
from layers.rng import filler_rng


def _fan(shape, variance_norm):
    count = int(numpy.prod(shape))
    fan_in = count // shape[0]
    fan_out = count // shape[1] if len(shape) > 1 else count
    from netspec import caffe_pb2
    norm = caffe_pb2.FillerParameter
    if variance_norm == norm.AVERAGE:
        return (fan_in + fan_out) / 2.0
    if variance_norm == norm.FAN_OUT:
        return fan_out
    return fan_in


def bilinear(shape, dtype=numpy.float32):
    """Caffe's BilinearFiller: a bilinear upsampling kernel in every (out, in) slot of a 4-D blob."""
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f"the bilinear filler needs a 4-D blob with square kernels, got shape {tuple(shape)}")
    k = shape[3]
    f = math.ceil(k / 2.0)
    c = numpy.float32((2 * f - 1 - f % 2) / (2.0 * f))
    x = numpy.arange(k, dtype=numpy.float32)
    g = 1 - numpy.abs(x / numpy.float32(f) - c)          # float32 arithmetic, as Caffe computes it
    kernel = (g[:, None] * g[None, :]).astype(dtype)
    return numpy.broadcast_to(kernel, tuple(shape)).copy()


def fill(filler, shape, dtype=numpy.float32, rng=None):
    """A numpy array of `shape` filled as the FillerParameter `filler` says.

    The array is made in `dtype` (float32 in nets, as Caffe fills) and drawn in chunks, so no float64 temporary
    of the weight's size is ever made (the values are those of one draw of the whole array). Its size is checked
    against the machine's memory first (layers.blob.check_size).
    """
    rng = rng or filler_rng()
    shape = tuple(int(s) for s in shape)
    check_size(shape, dtype, "param")
    kind = filler.type
    if kind == "constant":
        if filler.value == 0:
            return numpy.zeros(shape, dtype=dtype)      # calloc'd: VGG-sized zero weights cost no time or pages
        return numpy.full(shape, filler.value, dtype=dtype)
    if kind == "uniform":
        return _draw(shape, dtype, lambda n: rng.uniform(filler.min, filler.max, n))
    if kind == "gaussian":
        data = _draw(shape, dtype, lambda n: rng.normal(filler.mean, filler.std, n))
        if filler.sparse >= 0:
            # Caffe keeps each weight with probability sparse / num_outputs (shape[0])
            flat = data.reshape(-1)
            for start in range(0, flat.size, CHUNK):
                part = flat[start:start + CHUNK]
                part *= rng.random(part.size) < filler.sparse / shape[0]
        return data
    if kind == "positive_unitball":
        data = _draw(shape, dtype, lambda n: rng.uniform(0, 1, n))
        rows = data.reshape(shape[0], -1)
        rows /= rows.sum(axis=1, dtype=numpy.float64, keepdims=True).astype(dtype)
        return data
    if kind == "xavier":
        scale = math.sqrt(3.0 / _fan(shape, filler.variance_norm))
        return _draw(shape, dtype, lambda n: rng.uniform(-scale, scale, n))
    if kind == "msra":
        std = math.sqrt(2.0 / _fan(shape, filler.variance_norm))
        return _draw(shape, dtype, lambda n: rng.normal(0, std, n))
    if kind == "bilinear":
        return bilinear(shape, dtype)
    raise ValueError(f"unknown filler type {kind!r} (known: constant, uniform, gaussian, positive_unitball, "
                     f"xavier, msra, bilinear)")


CHUNK = 1 << 20                 # values drawn at a time: an 8 MB float64 temporary, whatever the weight's size


def _draw(shape, dtype, draw):
    """An array of `shape` and `dtype` filled by draw(n) (float64 draws) chunk by chunk, in order."""
    data = numpy.empty(shape, dtype=dtype)
    flat = data.reshape(-1)
    for start in range(0, flat.size, CHUNK):
        flat[start:start + CHUNK] = draw(min(CHUNK, flat.size - start))
    return data
