"""Convolution layer ("Convolution"): 2-D convolution with pad, stride, dilation, group and bias.
Semantics: caffe conv_layer.cpp / base_conv_layer.cpp. On the CPU the BLAS kernels of layers/im2col.py compute
it blockwise with few large GEMMs; on the GPU (and for dtypes BLAS lacks) im2col + one batched matrix product, or,
for 3x3 stride-1 layers with many channels, Winograd F(2x2, 3x3) (layers/winograd_gpu.py)."""
from layers import backend, fillers, winograd_gpu
from layers.base import Layer
from layers.depthwise import depthwise_data_grad, depthwise_forward, depthwise_weight_grad, is_depthwise
from layers.im2col import (col2im, conv_data_grad_cpu, conv_forward_cpu, conv_outsize, conv_weight_grad_cpu,
                           cpu_kernels_for, im2col)
from layers.registry import register


def pair(layer, repeated, h, w, has_h, default, what):
    """Caffe's kernel/pad/stride/dilation rule: the _h/_w pair, or 0, 1 or 2 repeated values."""
    if has_h:
        if len(repeated):
            raise layer.error(f"give either {what}_size-style repeated values or {what}_h/{what}_w, not both")
        return int(h), int(w)
    values = list(repeated)
    if len(values) == 0:
        if default is None:
            raise layer.error(f"{what} size is required (kernel_size, or kernel_h and kernel_w)")
        return default, default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) == 2:
        return int(values[0]), int(values[1])
    raise layer.error(f"{what} takes 1 or 2 values for a 2-D convolution, got {len(values)}")


def conv_geometry(layer, p):
    """Parse a ConvolutionParameter into ((kh, kw), (sh, sw), (ph, pw), (dh, dw))."""
    has_kh, has_kw = p.HasField("kernel_h"), p.HasField("kernel_w")
    if has_kh != has_kw:
        raise layer.error("kernel_h and kernel_w must be given together")
    kernel = pair(layer, p.kernel_size, p.kernel_h, p.kernel_w, has_kh, None, "kernel")
    if p.HasField("stride_h") != p.HasField("stride_w") or p.HasField("pad_h") != p.HasField("pad_w"):
        raise layer.error("stride_h/stride_w and pad_h/pad_w must be given in pairs")
    stride = pair(layer, p.stride, p.stride_h, p.stride_w, p.HasField("stride_h"), 1, "stride")
    pad = pair(layer, p.pad, p.pad_h, p.pad_w, p.HasField("pad_h"), 0, "pad")
    dilation = pair(layer, p.dilation, 0, 0, False, 1, "dilation")
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0 or min(pad) < 0:
        raise layer.error(f"kernel {kernel}, stride {stride} and dilation {dilation} must be positive "
                          f"and pad {pad} not negative")
    return kernel, stride, pad, dilation


class ConvolutionBase(Layer):
    """What Convolution and Deconvolution share: geometry, params and their fillers."""
    exact_num_bottom = None
    min_num_bottom = 1
    min_num_top = 1

    def setup(self, bottom, top):
        if len(bottom) != len(top):
            raise self.error(f"needs as many tops as bottoms, got {len(bottom)} bottom(s) and {len(top)} top(s)")
        p = self.param.convolution_param
        if p.axis not in (1, -3) or bottom[0].ndim != 4:
            raise self.error(f"supports 2-D convolution of N x C x H x W blobs on axis 1; got axis {p.axis} and "
                             f"bottom shape {bottom[0].shape}")
        self.kernel, self.stride, self.pad, self.dilation = conv_geometry(self, p)
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

    def check_bottoms(self, bottom):
        for i, b in enumerate(bottom):
            if b.ndim != 4 or b.shape[1] != self.channels:
                raise self.error(f"bottom {i} has shape {b.shape}; expected N x {self.channels} x H x W "
                                 f"(the channel count is fixed at setup)")
            if b.shape != bottom[0].shape:
                raise self.error(f"all bottoms must share a shape: bottom 0 is {bottom[0].shape}, "
                                 f"bottom {i} is {b.shape}")


@register("Convolution")
class ConvolutionLayer(ConvolutionBase):
    def weight_shape(self):
        return (self.num_output, self.channels // self.group) + self.kernel

    def reshape(self, bottom, top):
        self.check_bottoms(bottom)
        n, _, h, w = bottom[0].shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.pad, self.dilation
        oh, ow = conv_outsize(h, kh, sh, ph, dh), conv_outsize(w, kw, sw, pw, dw)
        if oh <= 0 or ow <= 0:
            raise self.error(f"the kernel {self.kernel} (dilation {self.dilation}) is larger than the padded "
                             f"input {h + 2 * ph}x{w + 2 * pw} (bottom {bottom[0].shape}, pad {self.pad})")
        for t in top:
            t.reshape(n, self.num_output, oh, ow)

    def _geometry(self):
        return dict(stride=self.stride, pad=self.pad, dilation=self.dilation, group=self.group)

    # -- CPU: blockwise BLAS kernels (layers/im2col.py)
    def forward_cpu(self, bottom, top):
        depthwise = is_depthwise(self.channels, self.group, self.blobs[0].shape)      # layers/depthwise.py
        if not depthwise and not cpu_kernels_for(*(b.data for b in bottom + top + self.blobs)):
            return self.forward_gpu(bottom, top)
        bias = self.blobs[1].data if self.bias_term else None
        for b, t in zip(bottom, top):
            (depthwise_forward if depthwise else conv_forward_cpu)(b.data, self.blobs[0].data, bias, t.data,
                                                                   **self._geometry())

    def backward_cpu(self, top, propagate_down, bottom):
        arrays = [t.diff for t in top] + [b.data for b in bottom] + [p.data for p in self.blobs]
        depthwise = is_depthwise(self.channels, self.group, self.blobs[0].shape)
        if not depthwise and not cpu_kernels_for(
                *arrays, *(b.diff for b, down in zip(bottom, propagate_down) if down),
                *(p.diff for p, down in zip(self.blobs, self.param_propagate_down) if down)):
            return self.backward_gpu(top, propagate_down, bottom)
        weight_grad, data_grad = ((depthwise_weight_grad, depthwise_data_grad) if depthwise
                                  else (conv_weight_grad_cpu, conv_data_grad_cpu))
        for t, b, down in zip(top, bottom, propagate_down):
            dy = t.diff
            if self.bias_term and self.param_propagate_down[1]:
                self.blobs[1].diff += dy.reshape(dy.shape[0], dy.shape[1], -1).sum(axis=2).sum(axis=0)
            if self.param_propagate_down[0]:
                weight_grad(b.data, dy, self.blobs[0].diff, **self._geometry())
            if down:
                data_grad(dy, self.blobs[0].data, b.diff, **self._geometry())

    # -- GPU (and any dtype): im2col + one batched matrix product per group
    def _columns(self, x):
        """The im2col matrix as (N, G, C/G*kh*kw, OH*OW); a 1x1 stride-1 unpadded conv needs no copy."""
        n, c, h, w = x.shape
        g = self.group
        if self.kernel == (1, 1) and self.stride == (1, 1) and self.pad == (0, 0):
            return x.reshape(n, g, c // g, h * w)
        col = im2col(x, *self.kernel, *self.stride, *self.pad, *self.dilation)
        return col.reshape(n, g, (c // g) * self.kernel[0] * self.kernel[1], -1)

    def _winograd(self, bottom, top):
        """The GPU's fast path for 3x3 stride-1 layers with many channels (layers/winograd_gpu.py)."""
        return backend.is_gpu(bottom[0].data) and winograd_gpu.applies(
            self.kernel, self.stride, self.dilation, self.group, self.channels, self.num_output, bottom[0].shape,
            top[0].shape)

    def forward_gpu(self, bottom, top):
        xp = self.xp(bottom[0])
        g = self.group
        weight = self.blobs[0].data.reshape(g, self.num_output // g, -1)
        for b, t in zip(bottom, top):
            if self._winograd(bottom, top):
                winograd_gpu.forward(b.data, self.blobs[0].data, self.blobs[1].data if self.bias_term else None,
                                     t.data, self.pad)
                continue
            col = self._columns(b.data)
            out = t.data.reshape(col.shape[0], g, self.num_output // g, -1)
            xp.matmul(weight[None], col, out=out)
            if self.bias_term:
                t.data += self.blobs[1].data.reshape(1, -1, 1, 1)

    def backward_gpu(self, top, propagate_down, bottom):
        xp = self.xp(top[0])
        g = self.group
        mg = self.num_output // g
        weight = self.blobs[0].data.reshape(g, mg, -1)
        for t, b, down in zip(top, bottom, propagate_down):
            dy = t.diff.reshape(t.shape[0], g, mg, -1)
            if self.bias_term and self.param_propagate_down[1]:
                self.blobs[1].diff += dy.sum(axis=(0, 3)).reshape(-1)
            if not (down or self.param_propagate_down[0]):
                continue
            if self._winograd(bottom, top):
                winograd_gpu.backward(b.data, self.blobs[0].data, t.diff, self.pad, b.diff if down else None,
                                      self.blobs[0].diff if self.param_propagate_down[0] else None)
                continue
            if self.param_propagate_down[0]:
                col = self._columns(b.data)
                self.blobs[0].diff += xp.matmul(dy, col.transpose(0, 1, 3, 2)).sum(axis=0).reshape(
                    self.blobs[0].shape)
            if down:
                dcol = xp.matmul(weight.transpose(0, 2, 1)[None], dy)
                n, c, h, w = b.shape
                if self.kernel == (1, 1) and self.stride == (1, 1) and self.pad == (0, 0):
                    b.diff[...] = dcol.reshape(b.shape)
                else:
                    oh, ow = t.shape[2:]
                    col = dcol.reshape(n, c, *self.kernel, oh, ow)
                    col2im(col, h, w, *self.stride, *self.pad, *self.dilation, out=b.diff)
