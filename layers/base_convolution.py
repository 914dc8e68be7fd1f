"""What Convolution and Deconvolution share (Caffe's BaseConvolutionLayer, base_conv_layer.cpp): parameter
parsing into a ConvGeometry, the weight and bias blobs, the bottom checks, reshape and backward.

A subclass says only what differs: its weight shape, its output size, and which convolution operation its
forward is (Convolution: forward; Deconvolution: data_grad). The arithmetic is layers/kernels/conv.py's: the
generic forward/backward force its reference strategy (im2col_gemm, any array module), the fast path lets it
choose (BLAS strategies on the CPU, Winograd on the GPU)."""
from layers import fillers
from layers.base import Layer
from layers.kernels import conv
from layers.kernels.geometry import conv_geometry


class BaseConvolutionLayer(Layer):
    exact_num_bottom = None
    min_num_bottom = 1
    min_num_top = 1

    # -- what a subclass says
    def weight_shape(self):
        raise NotImplementedError

    def output_size(self, h, w):
        """The top's (OH, OW) for an H x W bottom."""
        raise NotImplementedError

    def forward_arrays(self, x, y, strategy):
        """y = this layer's output for x (without the bias), through conv.<op>(..., strategy=strategy)."""
        raise NotImplementedError

    def backward_arrays(self, dy, x, dx, dw, strategy):
        """dx = the bottom gradient (when dx is given), dw += the weight gradient (when given)."""
        raise NotImplementedError

    # -- shared
    def setup(self, bottom, top):
        if len(bottom) != len(top):
            raise self.error(f"needs as many tops as bottoms, got {len(bottom)} bottom(s) and {len(top)} top(s)")
        p = self.param.convolution_param
        if p.axis not in (1, -3) or bottom[0].ndim != 4:
            raise self.error(f"supports 2-D convolution of N x C x H x W blobs on axis 1; got axis {p.axis} and "
                             f"bottom shape {bottom[0].shape}")
        self.geom = conv_geometry(self.error, p)
        self.kernel, self.stride, self.pad, self.dilation = (self.geom.kernel, self.geom.stride, self.geom.pad,
                                                             self.geom.dilation)
        self.num_output = p.num_output
        self.group = p.group
        self.channels = bottom[0].shape[1]
        if self.num_output <= 0:
            raise self.error("convolution_param.num_output must be set and positive")
        if self.group <= 0:
            raise self.error(f"convolution_param.group must be at least 1, got {self.group}")
        if self.channels % self.group or self.num_output % self.group:
            raise self.error(f"group {self.group} must divide both the input channels ({self.channels}) and "
                             f"num_output ({self.num_output})")
        self.bias_term = p.bias_term
        if not self.blobs:                       # params may already exist (copied or shared)
            dtype = bottom[0].dtype
            self.add_param_blob(self.weight_shape(), dtype, fillers.fill(p.weight_filler, self.weight_shape(), dtype))
            if self.bias_term:
                self.add_param_blob((self.num_output,), dtype, fillers.fill(p.bias_filler, (self.num_output,), dtype))

    def reshape(self, bottom, top):
        for i, b in enumerate(bottom):
            if b.ndim != 4 or b.shape[1] != self.channels:
                raise self.error(f"bottom {i} has shape {b.shape}; expected N x {self.channels} x H x W "
                                 f"(the channel count is fixed at setup)")
            if b.shape != bottom[0].shape:
                raise self.error(f"all bottoms must share a shape: bottom 0 is {bottom[0].shape}, "
                                 f"bottom {i} is {b.shape}")
        n, _, h, w = bottom[0].shape
        oh, ow = self.output_size(h, w)
        for t in top:
            t.reshape(n, self.num_output, oh, ow)

    def forward(self, bottom, top):
        self._forward(bottom, top, conv.REFERENCE)

    def forward_fast(self, bottom, top):
        self._forward(bottom, top, None)
        return True

    def backward(self, top, propagate_down, bottom):
        self._backward(top, propagate_down, bottom, conv.REFERENCE)

    def backward_fast(self, top, propagate_down, bottom):
        self._backward(top, propagate_down, bottom, None)
        return True

    def _forward(self, bottom, top, strategy):
        for b, t in zip(bottom, top):
            self.forward_arrays(b.data, t.data, strategy)
            if self.bias_term:
                t.data += self.blobs[1].data.reshape(1, -1, 1, 1)

    def _backward(self, top, propagate_down, bottom, strategy):
        learn_weight = self.param_propagate_down[0]
        for t, b, down in zip(top, bottom, propagate_down):
            dy = t.diff
            if self.bias_term and self.param_propagate_down[1]:
                self.blobs[1].diff += dy.reshape(dy.shape[0], dy.shape[1], -1).sum(axis=2).sum(axis=0)
            if down or learn_weight:
                self.backward_arrays(dy, b.data, b.diff if down else None,
                                     self.blobs[0].diff if learn_weight else None, strategy)
