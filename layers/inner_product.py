"""InnerProduct layer ("InnerProduct"): a fully connected layer over the axes from `axis` on.
Semantics: caffe inner_product_layer.cpp. The weight is (num_output, K), or (K, num_output) with transpose."""
import numpy

from layers import fillers
from layers.base import Layer
from layers.registry import register
from layers.softmax import canonical_axis


@register("InnerProduct")
class InnerProductLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.inner_product_param
        if p.num_output <= 0:
            raise self.error("inner_product_param.num_output must be set and positive")
        self.num_output = p.num_output
        self.axis = canonical_axis(self, p.axis, bottom[0].ndim)
        self.k = int(numpy.prod(bottom[0].shape[self.axis:]))
        self.transpose = p.transpose
        self.bias_term = p.bias_term
        if not self.blobs:
            dtype = bottom[0].dtype
            shape = (self.k, self.num_output) if self.transpose else (self.num_output, self.k)
            self.add_param_blob(shape, dtype, fillers.fill(p.weight_filler, shape, dtype))
            if self.bias_term:
                self.add_param_blob((self.num_output,), dtype, fillers.fill(p.bias_filler, (self.num_output,), dtype))

    def reshape(self, bottom, top):
        k = int(numpy.prod(bottom[0].shape[self.axis:]))
        if k != self.k:
            raise self.error(f"input size changed: bottom {bottom[0].shape} has {k} values per item from axis "
                             f"{self.axis}, the weights expect {self.k}")
        top[0].reshape(*bottom[0].shape[:self.axis], self.num_output)

    def _weight(self):
        w = self.blobs[0].data
        return w if self.transpose else w.T           # (K, N)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(-1, self.k)
        y = top[0].data.reshape(-1, self.num_output)
        self.xp(bottom[0]).matmul(x, self._weight(), out=y)
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(-1, self.num_output)
        x = bottom[0].data.reshape(-1, self.k)
        if self.param_propagate_down[0]:
            self.blobs[0].diff += (x.T @ dy) if self.transpose else (dy.T @ x)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff += dy.sum(axis=0)
        if propagate_down[0]:
            bottom[0].diff[...] = (dy @ self._weight().T).reshape(bottom[0].shape)
