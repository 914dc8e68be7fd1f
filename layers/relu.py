"""ReLU layer ("ReLU"): max(x, 0) + negative_slope * min(x, 0). Semantics: caffe relu_layer.cpp.
Usually in place (bottom == top); the gradient test reads the (post-ReLU) data, which has the same sign.
On the CPU large blobs are done in slabs on the convolution kernels' threads (numpy releases the GIL)."""
import numpy

from layers import backend
from layers.base import NeuronLayer
from layers.im2col import parallel_map
from layers.registry import register

SLAB = 1 << 20           # elements per slab: enough that a slab's work dwarfs handing it to a thread
_ZEROS = {}              # dtype -> SLAB zeros, never written: numpy's maximum against an array runs about 5x
                         # faster than against the scalar 0 (numpy 2.4), and calloc'd pages all read one zero page


@register("ReLU")
class ReLULayer(NeuronLayer):
    def setup(self, bottom, top):
        self.negative_slope = self.param.relu_param.negative_slope

    def _forward(self, xp, x, y):
        if self.negative_slope:
            y[...] = xp.where(x > 0, x, x * x.dtype.type(self.negative_slope))
        elif xp is numpy and x.ndim == 1 and x.size <= SLAB:     # a CPU slab
            if x.dtype not in _ZEROS:
                _ZEROS[x.dtype] = numpy.zeros(SLAB, x.dtype)
            numpy.maximum(x, _ZEROS[x.dtype][:x.size], out=y)
        else:
            xp.maximum(x, 0, out=y)

    def _backward(self, xp, x, dy, dx):
        positive = x > 0
        if self.negative_slope:
            dx[...] = xp.where(positive, dy, dy * dy.dtype.type(self.negative_slope))
        else:
            xp.multiply(dy, positive, out=dx)      # in place when top is bottom: no temporary

    def forward_gpu(self, bottom, top):
        self._forward(self.xp(bottom[0]), bottom[0].data, top[0].data)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, dy, dx = bottom[0].data, top[0].diff, bottom[0].diff
        if backend.is_gpu(x):        # one pass where the twin (_backward) makes a mask and then multiplies
            _relu_bwd(x, dy, x.dtype.type(self.negative_slope), dx)
        else:
            self._backward(self.xp(top[0]), x, dy, dx)

    def forward_cpu(self, bottom, top):
        if not (bottom[0].data.flags.c_contiguous and top[0].data.flags.c_contiguous):
            return self.forward_gpu(bottom, top)           # slabs need flat views
        x, y = bottom[0].data.reshape(-1), top[0].data.reshape(-1)
        parallel_map(lambda i: self._forward(self.xp(bottom[0]), x[i * SLAB:(i + 1) * SLAB],
                                             y[i * SLAB:(i + 1) * SLAB]), -(-x.size // SLAB))

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if not all(a.flags.c_contiguous for a in (bottom[0].data, top[0].diff, bottom[0].diff)):
            return self.backward_gpu(top, propagate_down, bottom)
        x, dy, dx = bottom[0].data.reshape(-1), top[0].diff.reshape(-1), bottom[0].diff.reshape(-1)
        parallel_map(lambda i: self._backward(self.xp(top[0]), x[i * SLAB:(i + 1) * SLAB], dy[i * SLAB:(i + 1) * SLAB],
                                              dx[i * SLAB:(i + 1) * SLAB]), -(-x.size // SLAB))


# ReLU's gradient on the GPU in one pass; its numpy twin, and test oracle, is ReLULayer._backward (the same
# products: dy * 1 or dy * negative_slope, dy * 0 where the slope is 0). dx may be dy itself (in place).
_relu_bwd = backend.ElementwiseKernel(
    "T x, T dy, T negative_slope",
    "T dx",
    "dx = x > (T)0 ? dy : dy * negative_slope",
    "fcn_relu_bwd")
