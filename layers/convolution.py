"""Convolution layer ("Convolution"): 2-D convolution with pad, stride, dilation, group and bias.
Semantics: caffe conv_layer.cpp / base_conv_layer.cpp (layers/base_convolution.py). The arithmetic is
layers/kernels/conv.py's strategies: blockwise BLAS kernels on the CPU, im2col + batched matmul or Winograd on
the GPU."""
from layers.base_convolution import BaseConvolutionLayer
from layers.kernels import conv
from layers.registry import register


@register("Convolution")
class ConvolutionLayer(BaseConvolutionLayer):
    def weight_shape(self):
        return (self.num_output, self.channels // self.group) + self.kernel

    def output_size(self, h, w):
        oh, ow = self.geom.out_size(h, w)
        if oh <= 0 or ow <= 0:
            (ph, pw) = self.pad
            raise self.error(f"the kernel {self.kernel} (dilation {self.dilation}) is larger than the padded "
                             f"input {h + 2 * ph}x{w + 2 * pw} (bottom size {h}x{w}, pad {self.pad})")
        return oh, ow

    def forward_arrays(self, x, y, strategy):
        conv.forward(x, self.blobs[0].data, None, y, self.geom, strategy)

    def backward_arrays(self, dy, x, dx, dw, strategy):
        if dw is not None:
            conv.weight_grad(x, dy, dw, self.geom, strategy)
        if dx is not None:
            conv.data_grad(dy, self.blobs[0].data, dx, self.geom, strategy)
