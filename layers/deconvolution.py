"""Deconvolution layer ("Deconvolution"): the transpose of Convolution, FCN's upsampling.
Semantics: caffe deconv_layer.cpp. The weight is (C_in, C_out/group, kh, kw), the output size is
stride*(H-1) + dilation*(k-1) + 1 - 2*pad. Forward is Convolution's input gradient (matmul then col2im) and
backward is Convolution's forward (im2col then matmul). On the CPU these are the blockwise BLAS kernels of
layers/im2col.py; on the GPU (and for dtypes BLAS lacks) im2col/col2im with batched matrix products."""
from layers.convolution import ConvolutionBase
from layers.im2col import (col2im, conv_data_grad_cpu, conv_forward_cpu, conv_weight_grad_cpu, cpu_kernels_for,
                           deconv_outsize, im2col)
from layers.registry import register


@register("Deconvolution")
class DeconvolutionLayer(ConvolutionBase):
    def weight_shape(self):
        return (self.channels, self.num_output // self.group) + self.kernel

    def reshape(self, bottom, top):
        self.check_bottoms(bottom)
        n, _, h, w = bottom[0].shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.pad, self.dilation
        oh, ow = deconv_outsize(h, kh, sh, ph, dh), deconv_outsize(w, kw, sw, pw, dw)
        if oh <= 0 or ow <= 0:
            raise self.error(f"pad {self.pad} is too large: the output of bottom {bottom[0].shape} with kernel "
                             f"{self.kernel}, stride {self.stride} and dilation {self.dilation} would be "
                             f"{oh}x{ow}")
        for t in top:
            t.reshape(n, self.num_output, oh, ow)

    @property
    def _is_1x1(self):
        # no col2im/im2col copy needed (Caffe's is_1x1_)
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.pad == (0, 0)

    def _weight(self):
        """The weight as (G, C_in/G, C_out/G*kh*kw): one matrix per group."""
        g = self.group
        return self.blobs[0].data.reshape(g, self.channels // g, -1)

    def _geometry(self):
        return dict(stride=self.stride, pad=self.pad, dilation=self.dilation, group=self.group)

    # -- CPU: the deconvolution is the convolution (weight as is) run backwards
    def forward_cpu(self, bottom, top):
        if not cpu_kernels_for(*(b.data for b in bottom + top + self.blobs)):
            return self.forward_gpu(bottom, top)
        for b, t in zip(bottom, top):
            conv_data_grad_cpu(b.data, self.blobs[0].data, t.data, **self._geometry())
            if self.bias_term:
                t.data += self.blobs[1].data.reshape(1, -1, 1, 1)

    def backward_cpu(self, top, propagate_down, bottom):
        arrays = [t.diff for t in top] + [b.data for b in bottom] + [p.data for p in self.blobs]
        if not cpu_kernels_for(*arrays, *(b.diff for b, down in zip(bottom, propagate_down) if down),
                               *(p.diff for p, down in zip(self.blobs, self.param_propagate_down) if down)):
            return self.backward_gpu(top, propagate_down, bottom)
        for t, b, down in zip(top, bottom, propagate_down):
            dy = t.diff
            if self.bias_term and self.param_propagate_down[1]:
                self.blobs[1].diff += dy.reshape(dy.shape[0], dy.shape[1], -1).sum(axis=2).sum(axis=0)
            if self.param_propagate_down[0]:
                conv_weight_grad_cpu(dy, b.data, self.blobs[0].diff, **self._geometry())
            if down:
                conv_forward_cpu(dy, self.blobs[0].data, None, b.diff, **self._geometry())

    # -- GPU (and any dtype)
    def forward_gpu(self, bottom, top):
        xp = self.xp(bottom[0])
        g = self.group
        weight = self._weight()
        for b, t in zip(bottom, top):
            n, c, h, w = b.shape
            x = b.data.reshape(n, g, c // g, h * w)
            col = xp.matmul(weight.transpose(0, 2, 1)[None], x)          # (N, G, C_out/G*kh*kw, H*W)
            if self._is_1x1:
                t.data[...] = col.reshape(t.shape)
            else:
                col = col.reshape(n, self.num_output, *self.kernel, h, w)
                col2im(col, t.shape[2], t.shape[3], *self.stride, *self.pad, *self.dilation, out=t.data)
            if self.bias_term:
                t.data += self.blobs[1].data.reshape(1, -1, 1, 1)

    def _columns(self, dy):
        """The top diff as (N, G, C_out/G*kh*kw, H*W), H x W being the bottom's size."""
        n = dy.shape[0]
        g = self.group
        if self._is_1x1:
            return dy.reshape(n, g, self.num_output // g, -1)
        col = im2col(dy, *self.kernel, *self.stride, *self.pad, *self.dilation)
        return col.reshape(n, g, (self.num_output // g) * self.kernel[0] * self.kernel[1], -1)

    def backward_gpu(self, top, propagate_down, bottom):
        xp = self.xp(top[0])
        g = self.group
        weight = self._weight()
        for t, b, down in zip(top, bottom, propagate_down):
            if self.bias_term and self.param_propagate_down[1]:
                self.blobs[1].diff += t.diff.sum(axis=(0, 2, 3))
            if not (down or self.param_propagate_down[0]):
                continue
            n, c, h, w = b.shape
            dcol = self._columns(t.diff)
            if self.param_propagate_down[0]:
                x = b.data.reshape(n, g, c // g, h * w)
                self.blobs[0].diff += xp.matmul(x, dcol.transpose(0, 1, 3, 2)).sum(axis=0).reshape(
                    self.blobs[0].shape)
            if down:
                b.diff[...] = xp.matmul(weight[None], dcol).reshape(b.shape)
