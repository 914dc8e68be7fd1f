"""PReLU layer ("PReLU"): y = max(x, 0) + a min(x, 0) with a learned slope a per channel (axis 1), or one slope
for all with channel_shared (a 0-d blob, as Caffe stores it). Semantics: caffe prelu_layer.cpp; prelu_param.filler
defaults to constant 0.25. Run in place, it keeps a copy of its input for backward, as Caffe does."""
from layers import fillers
from layers.base import NeuronLayer
from layers.registry import register
from netspec import caffe_pb2


@register("PReLU")
class PReLULayer(NeuronLayer):
    def setup(self, bottom, top):
        p = self.param.prelu_param
        if bottom[0].ndim < 2:
            raise self.error(f"needs a bottom with at least 2 axes (N, C, ...), got shape {bottom[0].shape}")
        self.channel_shared = p.channel_shared
        shape = () if self.channel_shared else (bottom[0].shape[1],)
        if not self.blobs:
            filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(type="constant", value=0.25)
            self.add_param_blob(shape, bottom[0].dtype, fillers.fill(filler, shape, bottom[0].dtype))
        elif self.blobs[0].shape != shape:
            raise self.error(f"the slope blob has shape {self.blobs[0].shape}, channel_shared "
                             f"{str(self.channel_shared).lower()} needs {shape}")

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        ndim = bottom[0].ndim
        self.view = (1,) * ndim if self.channel_shared else (1, -1) + (1,) * (ndim - 2)
        self.reduce = tuple(range(ndim)) if self.channel_shared else (0,) + tuple(range(2, ndim))

    def forward(self, bottom, top):
        xp, x = self.xp(bottom[0]), bottom[0].data
        self.saved_bottom = x.copy() if top[0] is bottom[0] else None
        a = self.blobs[0].data.reshape(self.view)
        top[0].data[...] = xp.maximum(x, 0) + a * xp.minimum(x, 0)

    def backward(self, top, propagate_down, bottom):
        xp, dy = self.xp(top[0]), top[0].diff
        x = bottom[0].data if self.saved_bottom is None else self.saved_bottom
        negative = x <= 0
        if self.param_propagate_down[0]:          # before the bottom diff: in place, that overwrites dy
            self.blobs[0].diff += (dy * x * negative).sum(axis=self.reduce).reshape(self.blobs[0].shape)
        if propagate_down[0]:
            bottom[0].diff[...] = dy * xp.where(negative, self.blobs[0].data.reshape(self.view), 1)
