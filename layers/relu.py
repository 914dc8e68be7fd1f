"""ReLU layer ("ReLU"): max(x, 0) + negative_slope * min(x, 0). Semantics: caffe relu_layer.cpp.
Usually in place (bottom == top); the gradient test reads the (post-ReLU) data, which has the same sign.
forward/backward are the generic code; the fast path does large CPU blobs in slabs on the kernel threads (numpy
releases the GIL) and the GPU gradient in one kernel."""
import numpy

from layers import backend
from layers.base import NeuronLayer
from layers.kernels.threads import parallel_map
from layers.registry import register

SLAB = 1 << 20           # elements per slab: enough that a slab's work dwarfs handing it to a thread
_ZEROS = {}              # dtype -> SLAB zeros, never written: numpy's maximum against an array runs about 5x
                         # faster than against the scalar 0 (numpy 2.4), and calloc'd pages all read one zero page


@register("ReLU")
class ReLULayer(NeuronLayer):
    def setup(self, bottom, top):
        self.negative_slope = self.param.relu_param.negative_slope

    def _apply(self, xp, x, y):
        if self.negative_slope:
            y[...] = xp.where(x > 0, x, x * x.dtype.type(self.negative_slope))
        elif xp is numpy and x.ndim == 1 and x.size <= SLAB:     # a CPU slab
            if x.dtype not in _ZEROS:
                _ZEROS[x.dtype] = numpy.zeros(SLAB, x.dtype)
            numpy.maximum(x, _ZEROS[x.dtype][:x.size], out=y)
        else:
            xp.maximum(x, 0, out=y)

    def _gradient(self, xp, x, dy, dx):
        positive = x > 0
        if self.negative_slope:
            dx[...] = xp.where(positive, dy, dy * dy.dtype.type(self.negative_slope))
        else:
            xp.multiply(dy, positive, out=dx)      # in place when top is bottom: no temporary

    def forward(self, bottom, top):
        self._apply(self.xp(bottom[0]), bottom[0].data, top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self._gradient(self.xp(top[0]), bottom[0].data, top[0].diff, bottom[0].diff)

    def forward_fast(self, bottom, top):
        """The CPU: slabs on the kernel threads (they need flat views)."""
        x, y = bottom[0].data, top[0].data
        if backend.is_gpu(x) or not (x.flags.c_contiguous and y.flags.c_contiguous):
            return False
        x, y = x.reshape(-1), y.reshape(-1)
        parallel_map(lambda i: self._apply(numpy, x[i * SLAB:(i + 1) * SLAB], y[i * SLAB:(i + 1) * SLAB]),
                     -(-x.size // SLAB))
        return True

    def backward_fast(self, top, propagate_down, bottom):
        """The GPU: one kernel pass (where the generic code makes a mask, then multiplies); the CPU: slabs."""
        x, dy, dx = bottom[0].data, top[0].diff, bottom[0].diff
        if not propagate_down[0]:
            return True
        if backend.is_gpu(x):
            _relu_bwd(x, dy, x.dtype.type(self.negative_slope), dx)
            return True
        if not all(a.flags.c_contiguous for a in (x, dy, dx)):
            return False
        x, dy, dx = x.reshape(-1), dy.reshape(-1), dx.reshape(-1)
        parallel_map(lambda i: self._gradient(numpy, x[i * SLAB:(i + 1) * SLAB], dy[i * SLAB:(i + 1) * SLAB],
                                              dx[i * SLAB:(i + 1) * SLAB]), -(-x.size // SLAB))
        return True


# ReLU's gradient on the GPU in one pass; its numpy twin, and test oracle, is ReLULayer._gradient (the same
# products: dy * 1 or dy * negative_slope, dy * 0 where the slope is 0). dx may be dy itself (in place).
_relu_bwd = backend.ElementwiseKernel(
    "T x, T dy, T negative_slope",
    "T dx",
    "dx = x > (T)0 ? dy : dy * negative_slope",
    "fcn_relu_bwd")
