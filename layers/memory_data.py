"""MemoryData layer ("MemoryData"): batches from arrays handed over in memory. Semantics: caffe
memory_data_layer.cpp; pycaffe's Net.set_input_arrays calls `reset`.

memory_data_param gives batch_size, channels, height and width (all positive). `reset(data, labels, n)` hands
over n rows (n a multiple of batch_size): data holding n x channels x height x width values, labels n. The
arrays are kept, not copied, as Caffe keeps the pointers, and no transform_param is applied to them (Caffe
warns so). Each forward serves the next batch_size rows, wrapping around after n: data (batch_size x channels x
height x width) and label (batch_size x 1 x 1 x 1; batch_size before the first forward, as Caffe shapes it).
"""
import warnings

import numpy

from layers.base import Layer
from layers.data_transformer import DataTransformer
from layers.registry import register


@register("MemoryData")
class MemoryDataLayer(Layer):
    exact_num_bottom = 0
    exact_num_top = 2

    def setup(self, bottom, top):
        p = self.param.memory_data_param
        self.batch_size, self.channels, self.height, self.width = p.batch_size, p.channels, p.height, p.width
        if min(self.batch_size, self.channels, self.height, self.width) < 1:
            raise self.error("batch_size, channels, height, and width must be specified and positive in "
                             "memory_data_param")
        self.transformer = DataTransformer(self)       # built as in Caffe (mean_file read, seed drawn), unused
        self.data = self.labels = None
        self.n = self.pos = 0
        top[0].reshape(self.batch_size, self.channels, self.height, self.width)
        top[1].reshape(self.batch_size)

    def reset(self, data, labels, n):
        """Serve these n rows from the next forward on, starting at the first (MemoryDataLayer::Reset)."""
        if data is None or labels is None:
            raise self.error("reset needs a data array and a labels array")
        n = int(n)
        if n < 1 or n % self.batch_size:
            raise self.error(f"n must be a multiple of batch size: got n = {n} for batch_size {self.batch_size}")
        data, labels = numpy.asarray(data), numpy.asarray(labels)
        size = self.channels * self.height * self.width
        if data.size < n * size or labels.size < n:
            raise self.error(f"reset with n = {n} needs {n * size} data values ({n} x {self.channels} x "
                             f"{self.height} x {self.width}) and {n} labels, got {data.size} and {labels.size}")
        if self.param.HasField("transform_param"):
            warnings.warn(f"{self.type} layer '{self.name}': MemoryData does not transform array data on Reset()")
        self.data = data.reshape(-1)[:n * size].reshape(n, self.channels, self.height, self.width)
        self.labels = labels.reshape(-1)[:n]
        self.n, self.pos = n, 0

    def set_batch_size(self, new_size):
        """MemoryDataLayer::set_batch_size: later forwards serve new_size rows."""
        if int(new_size) < 1:
            raise self.error(f"batch size must be positive, got {new_size}")
        self.batch_size = int(new_size)

    def reshape(self, bottom, top):
        pass                                    # shaped in forward, as Caffe's Forward_cpu does

    def forward(self, bottom, top):
        if self.data is None:
            raise self.error("has no data: call reset(data, labels, n) first (pycaffe: net.set_input_arrays)")
        end = self.pos + self.batch_size
        if end > self.n:
            raise self.error(f"batch_size {self.batch_size} does not divide the {self.n} rows given to reset; "
                             f"reset again with a multiple of it")
        top[0].reshape(self.batch_size, self.channels, self.height, self.width)
        top[1].reshape(self.batch_size, 1, 1, 1)
        top[0].data[...] = top[0].xp.asarray(self.data[self.pos:end], dtype=top[0].dtype)
        top[1].data[...] = top[1].xp.asarray(self.labels[self.pos:end].reshape(-1, 1, 1, 1), dtype=top[1].dtype)
        self.pos = end % self.n

    def backward(self, top, propagate_down, bottom):
        pass
