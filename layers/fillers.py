"""Caffe's weight fillers (cf. caffe/filler.hpp): constant, uniform, gaussian (+sparse), positive_unitball,
xavier, msra, bilinear. Values are drawn with numpy's generator; the distributions are Caffe's."""
import math

import numpy

_rng = numpy.random.default_rng(1701)


def seed(value):
    """Seed the filler generator (the solver's random_seed does this)."""
    global _rng
    _rng = numpy.random.default_rng(value)


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
    """A numpy array of `shape` filled as the FillerParameter `filler` says."""
    rng = rng or _rng
    shape = tuple(int(s) for s in shape)
    kind = filler.type
    if kind == "constant":
        if filler.value == 0:
            return numpy.zeros(shape, dtype=dtype)      # calloc'd: VGG-sized zero weights cost no time or pages
        return numpy.full(shape, filler.value, dtype=dtype)
    if kind == "uniform":
        return rng.uniform(filler.min, filler.max, shape).astype(dtype)
    if kind == "gaussian":
        data = rng.normal(filler.mean, filler.std, shape).astype(dtype)
        if filler.sparse >= 0:
            # Caffe keeps each weight with probability sparse / num_outputs (shape[0])
            keep = rng.random(shape) < filler.sparse / shape[0]
            data *= keep
        return data
    if kind == "positive_unitball":
        data = rng.uniform(0, 1, shape)
        data /= data.reshape(shape[0], -1).sum(axis=1).reshape((shape[0],) + (1,) * (len(shape) - 1))
        return data.astype(dtype)
    if kind == "xavier":
        scale = math.sqrt(3.0 / _fan(shape, filler.variance_norm))
        return rng.uniform(-scale, scale, shape).astype(dtype)
    if kind == "msra":
        std = math.sqrt(2.0 / _fan(shape, filler.variance_norm))
        return rng.normal(0, std, shape).astype(dtype)
    if kind == "bilinear":
        return bilinear(shape, dtype)
    raise ValueError(f"unknown filler type {kind!r} (known: constant, uniform, gaussian, positive_unitball, "
                     f"xavier, msra, bilinear)")
