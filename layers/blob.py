"""Blob: a named pair of arrays, data and diff, as in Caffe and pycaffe.

`diff` is allocated on first use (all zeros, as Caffe's fresh memory is), so inference never pays for it.
The arrays are numpy or CuPy; `to_gpu`/`to_cpu` move both.
"""
import numpy

from layers import backend


class MemoryLimitError(ValueError, MemoryError):
    """An array larger than the memory of the machine (or GPU) it would live on, refused before allocating it.
    A ValueError (bad input: the net asks for it) and a MemoryError; the Net adds the layer's name."""


def nbytes(shape, dtype=numpy.float32):
    count = 1
    for s in shape:
        count *= int(s)
    return count * numpy.dtype(dtype).itemsize


def format_bytes(n):
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def check_size(shape, dtype=numpy.float32, what="blob", xp=numpy):
    """Refuse (MemoryLimitError) an array of `shape` that could not fit in the memory of `xp`'s device."""
    need = nbytes(shape, dtype)
    have = backend.memory_bytes(xp)
    if need > have:
        where = "this machine's memory" if xp is numpy else "the GPU's memory"
        dims = " x ".join(str(int(s)) for s in shape)
        raise MemoryLimitError(f"a {what} of shape {dims} ({numpy.dtype(dtype).name}) "
                            f"would need {format_bytes(need)} ({need:,} bytes), more than {where} "
                            f"({format_bytes(have)})")


class Blob:
    def __init__(self, *shape, dtype=numpy.float32, xp=numpy):
        self._xp = xp
        self.dtype = numpy.dtype(dtype)
        check_size(shape, self.dtype, xp=xp)
        self._data = xp.zeros(shape, dtype=self.dtype)
        self._diff = None

    # -- shape, as pycaffe's Blob
    @property
    def shape(self):
        return self._data.shape

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def count(self):
        return int(self._data.size)

    def _legacy(self, axis):
        # Caffe's LegacyShape: at most 4 axes; an axis past the last one reads as 1
        if self.ndim > 4:
            raise ValueError(f"num/channels/height/width need at most 4 axes, blob has shape {self.shape}")
        return self.shape[axis] if axis < self.ndim else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    def reshape(self, *shape):
        """Change the shape; the arrays are reallocated (zeroed) only when it really changes."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"a blob shape cannot be negative: {shape}")
        if shape != self._data.shape:
            check_size(shape, self.dtype, xp=self._xp)
            self._data = self._xp.zeros(shape, dtype=self.dtype)
            self._diff = None

    # -- data and diff
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        value = self._xp.asarray(value, dtype=self.dtype)
        if value.shape != self._data.shape:
            raise ValueError(f"cannot assign data of shape {value.shape} to a blob of shape {self.shape}; "
                             f"reshape the blob first")
        self._data = value

    @property
    def diff(self):
        if self._diff is None or self._diff.shape != self._data.shape:
            self._diff = self._xp.zeros(self._data.shape, dtype=self.dtype)
        return self._diff

    @diff.setter
    def diff(self, value):
        value = self._xp.asarray(value, dtype=self.dtype)
        if value.shape != self._data.shape:
            raise ValueError(f"cannot assign a diff of shape {value.shape} to a blob of shape {self.shape}")
        self._diff = value

    @property
    def has_diff(self):
        return self._diff is not None

    def share_data(self, other):
        """Use other's data array (Caffe's ShareData: Split and in-place views)."""
        self._data = other.data

    # -- device
    @property
    def xp(self):
        return self._xp

    def to_gpu(self, device_id=None):
        self._data = backend.to_gpu(self._data, device_id)
        if self._diff is not None:
            self._diff = backend.to_gpu(self._diff, device_id)
        self._xp = backend.cupy
        return self

    def to_cpu(self):
        self._data = backend.to_cpu(self._data)
        if self._diff is not None:
            self._diff = backend.to_cpu(self._diff)
        self._xp = numpy
        return self

    def __repr__(self):
        return f"Blob(shape={self.shape}, dtype={self.dtype.name})"
