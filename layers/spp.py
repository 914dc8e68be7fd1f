"""SPP layer ("SPP"): spatial pyramid pooling. Level l (of spp_param.pyramid_height) pools the image into
2^l x 2^l bins, a Pooling with kernel ceil(H / 2^l), stride = kernel and pad (kernel * 2^l - H + 1) / 2 (the same
for W); the levels are flattened and concatenated per image: (N, C * sum of 4^l). With pyramid_height 1 the top
is the one level's (N, C, 1, 1) pooling output, unflattened. Semantics: caffe spp_layer.cpp, which builds it from
Split, Pooling, Flatten and Concat sublayers; here the Pooling sublayers run on the bottom and write into the top."""
from layers.base import Layer
from layers.blob import Blob
from layers.pooling import PoolingLayer
from layers.registry import register
from netspec import caffe_pb2


def level_pooling(name, level, height, width, pool):
    """Caffe's SPPLayer::GetPoolingParam: the Pooling LayerParameter of one pyramid level."""
    bins = 2 ** level
    param = caffe_pb2.LayerParameter(name=f"{name}_level{level}", type="Pooling")
    p = param.pooling_param
    p.kernel_h, p.kernel_w = -(-height // bins), -(-width // bins)
    p.stride_h, p.stride_w = p.kernel_h, p.kernel_w
    p.pad_h, p.pad_w = (p.kernel_h * bins - height + 1) // 2, (p.kernel_w * bins - width + 1) // 2
    p.pool = pool                           # SPPParameter.PoolMethod has PoolingParameter's values
    return param


@register("SPP")
class SPPLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        self.pyramid_height = self.param.spp_param.pyramid_height
        if self.pyramid_height < 1:
            raise self.error("spp_param.pyramid_height must be set and positive")
        self.built_for = None

    def reshape(self, bottom, top):
        if bottom[0].ndim != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got {bottom[0].shape}")
        n, c, h, w = bottom[0].shape
        if h == 0 or w == 0:
            raise self.error(f"input dimensions cannot be zero, got {bottom[0].shape}")
        if self.built_for != (bottom[0].shape, bottom[0].xp):       # Caffe rebuilds its sublayers on a new shape
            self.built_for = (bottom[0].shape, bottom[0].xp)
            self.input = Blob(*bottom[0].shape, dtype=bottom[0].dtype, xp=bottom[0].xp)
            self.input.share_data(bottom[0])
            self.levels = []
            for level in range(self.pyramid_height):
                layer = PoolingLayer(level_pooling(self.name, level, h, w, self.param.spp_param.pool), self.phase)
                pooled = Blob(dtype=bottom[0].dtype, xp=bottom[0].xp)
                layer.run_setup([self.input], [pooled])
                self.levels.append((layer, pooled))
        if self.pyramid_height == 1:
            top[0].reshape(*self.levels[0][1].shape)
        else:
            top[0].reshape(n, sum(pooled.count // n for _, pooled in self.levels))

    def _slices(self, top):
        """Each level's pooling layer, its output and its columns of the top (as (N, columns))."""
        n, start = top[0].shape[0], 0
        for layer, pooled in self.levels:
            k = pooled.count // n
            yield layer, pooled, (slice(None), slice(start, start + k))
            start += k

    def forward(self, bottom, top):
        self.input.share_data(bottom[0])
        n = bottom[0].shape[0]
        for layer, pooled, cols in self._slices(top):
            layer.run_forward([self.input], [pooled])
            top[0].data.reshape(n, -1)[cols] = pooled.data.reshape(n, -1)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        n = bottom[0].shape[0]
        bottom[0].diff[...] = 0
        for layer, pooled, cols in self._slices(top):
            pooled.diff[...] = top[0].diff.reshape(n, -1)[cols].reshape(pooled.shape)
            layer.run_backward([pooled], [True], [self.input])
            bottom[0].diff += self.input.diff
