"""Deconvolution layer ("Deconvolution"): the transpose of Convolution, FCN's upsampling.
Semantics: caffe deconv_layer.cpp. The weight is (C_in, C_out/group, kh, kw), the output size is
stride*(H-1) + dilation*(k-1) + 1 - 2*pad. Its forward is the convolution's input gradient and its backward the
convolution's forward (the bottom gradient) and weight gradient with input and output swapped
(layers/kernels/conv.py)."""
from layers.base_convolution import BaseConvolutionLayer
from layers.kernels import conv
from layers.registry import register


@register("Deconvolution")
class DeconvolutionLayer(BaseConvolutionLayer):
    def weight_shape(self):
        return (self.channels, self.num_output // self.group) + self.kernel

    def output_size(self, h, w):
        oh, ow = self.geom.deconv_size(h, w)
        if oh <= 0 or ow <= 0:
            raise self.error(f"pad {self.pad} is too large: the output of bottom size {h}x{w} with kernel "
                             f"{self.kernel}, stride {self.stride} and dilation {self.dilation} would be "
                             f"{oh}x{ow}")
        return oh, ow

    def forward_arrays(self, x, y, strategy):
        conv.data_grad(x, self.blobs[0].data, y, self.geom, strategy)

    def backward_arrays(self, dy, x, dx, dw, strategy):
        if dw is not None:
            conv.weight_grad(dy, x, dw, self.geom, strategy)
        if dx is not None:
            conv.forward(dy, self.blobs[0].data, None, dx, self.geom, strategy)
