"""Im2col layer ("Im2col"): the im2col matrix of a 2-D convolution as a blob, (N, C, H, W) -> (N, C*kh*kw, OH, OW)
with row index c*kh*kw + ky*kw + kx; backward is col2im (overlapping taps summed). Semantics: caffe
im2col_layer.cpp, with convolution_param's kernel, stride, pad and dilation. (The file is not im2col.py, Caffe's
type in snake_case, because layers/kernels/im2col.py holds the im2col/col2im kernels the convolutions share.)"""
from layers.base import Layer
from layers.kernels.geometry import conv_geometry
from layers.kernels.im2col import col2im, im2col
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
        self.geom = conv_geometry(self.error, p)
        self.kernel, self.pad, self.dilation = self.geom.kernel, self.geom.pad, self.geom.dilation

    def reshape(self, bottom, top):
        n, c, h, w = bottom[0].shape
        (kh, kw), (ph, pw) = self.kernel, self.pad
        self.out = self.geom.out_size(h, w)
        if min(self.out) <= 0:
            raise self.error(f"the kernel {self.kernel} (dilation {self.dilation}) is larger than the padded input "
                             f"{h + 2 * ph}x{w + 2 * pw}")
        top[0].reshape(n, c * kh * kw, *self.out)

    def forward(self, bottom, top):
        n, c = bottom[0].shape[:2]
        im2col(bottom[0].data, self.geom, out=top[0].data.reshape(n, c, *self.kernel, *self.out))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            n, c, h, w = bottom[0].shape
            col2im(top[0].diff.reshape(n, c, *self.kernel, *self.out), h, w, self.geom, out=bottom[0].diff)
