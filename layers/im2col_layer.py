"""Im2col layer ("Im2col"): the im2col matrix of a 2-D convolution as a blob, (N, C, H, W) -> (N, C*kh*kw, OH, OW)
with row index c*kh*kw + ky*kw + kx; backward is col2im (overlapping taps summed). Semantics: caffe
im2col_layer.cpp, with convolution_param's kernel, stride, pad and dilation. (The file is not im2col.py, Caffe's
type in snake_case, because that module holds the im2col/col2im kernels the convolutions share.)"""
from layers.base import Layer
from layers.convolution import conv_geometry
from layers.im2col import col2im, conv_outsize, im2col
from layers.registry import register


@register("Im2col")
class Im2colLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.convolution_param
        if p.axis not in (1, -3) or bottom[0].ndim != 4:
            raise self.error(f"supports 2-D im2col of N x C x H x W blobs on axis 1; got axis {p.axis} and bottom "
                             f"shape {bottom[0].shape}")
        self.kernel, self.stride, self.pad, self.dilation = conv_geometry(self, p)

    def reshape(self, bottom, top):
        n, c, h, w = bottom[0].shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.pad, self.dilation
        self.out = conv_outsize(h, kh, sh, ph, dh), conv_outsize(w, kw, sw, pw, dw)
        if min(self.out) <= 0:
            raise self.error(f"the kernel {self.kernel} (dilation {self.dilation}) is larger than the padded input "
                             f"{h + 2 * ph}x{w + 2 * pw}")
        top[0].reshape(n, c * kh * kw, *self.out)

    def _geometry(self):
        return (*self.stride, *self.pad, *self.dilation)

    def forward(self, bottom, top):
        n, c = bottom[0].shape[:2]
        im2col(bottom[0].data, *self.kernel, *self._geometry(),
               out=top[0].data.reshape(n, c, *self.kernel, *self.out))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            n, c, h, w = bottom[0].shape
            col2im(top[0].diff.reshape(n, c, *self.kernel, *self.out), h, w, *self._geometry(), out=bottom[0].diff)
