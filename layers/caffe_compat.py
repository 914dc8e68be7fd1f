"""pycaffe's names for Python layers, so that an existing layer module runs after changing one line:

    import caffe                                   ->   from layers import caffe_compat as caffe

    class EuclideanLossLayer(caffe.Layer):
        def setup(self, bottom, top): ...          # self.param_str, self.phase are set before this runs
        def reshape(self, bottom, top): ...
        def forward(self, bottom, top): ...
        def backward(self, top, propagate_down, bottom): ...

As in pycaffe, the class is built as cls(layer_param), self.phase is an int equal to caffe.TRAIN (0) or
caffe.TEST (1), and self.blobs holds learnable params created with self.blobs.add_blob(*shape).
The "Python" layer type (layers/python_layer.py) finds the module and drives the class.
"""
import enum

import numpy

from layers.blob import Blob
from netspec import caffe_pb2


class Phase(enum.IntEnum):
    TRAIN = caffe_pb2.TRAIN
    TEST = caffe_pb2.TEST


TRAIN = Phase.TRAIN
TEST = Phase.TEST


class BlobVec(list):
    """A layer's learnable blobs (pycaffe's BlobVec)."""
    dtype = numpy.float32

    def add_blob(self, *shape):
        """Append a zero-filled param blob of this shape; the Net learns it like any layer param."""
        self.append(Blob(*shape, dtype=self.dtype))


class Layer:
    """Base class of a user's Python layer (pycaffe's caffe.Layer)."""

    def __init__(self, layer_param=None):
        self.param_str = layer_param.python_param.param_str if layer_param is not None else ""
        self.phase = TEST
        self.blobs = BlobVec()

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        raise NotImplementedError(f"Python layer class {type(self).__name__} defines no forward(bottom, top)")

    def backward(self, top, propagate_down, bottom):
        raise NotImplementedError(f"Python layer class {type(self).__name__} defines no "
                                  f"backward(top, propagate_down, bottom)")
