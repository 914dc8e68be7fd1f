"""BatchNorm layer ("BatchNorm"): normalize each channel (axis 1) over the batch and spatial axes; no affine part
(nets follow it with a Scale layer). Semantics: caffe batch_norm_layer.cpp.

Three blobs: the running mean (C,), variance (C,) and a scale factor (1,). They are statistics, not learned
params: setup pins lr_mult 0 on each (adding the param specs a net leaves out, refusing a nonzero lr_mult, as
Caffe's LayerSetUp does), so no solver moves them and no gradient is computed for them. use_global_stats defaults
to true in TEST and false in TRAIN. With global statistics y = (x - mean/f) / sqrt(var/f + eps) (f = 0 gives 0).
Otherwise the batch mean and biased variance normalize, and forward updates the blobs:
mean <- batch mean + maf * mean, var <- m/(m-1) * batch var + maf * var, f <- maf * f + 1 (m values per channel).
"""
from layers.base import Layer
from layers.registry import register


@register("BatchNorm")
class BatchNormLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.batch_norm_param
        self.use_global_stats = p.use_global_stats if p.HasField("use_global_stats") else self.phase == "TEST"
        self.moving_average_fraction = p.moving_average_fraction
        self.eps = p.eps
        self.channels = 1 if bottom[0].ndim == 1 else bottom[0].shape[1]
        if not self.blobs:
            for shape in ((self.channels,), (self.channels,), (1,)):
                self.add_param_blob(shape, bottom[0].dtype)
        for i in range(len(self.blobs)):
            if i == len(self.param.param):
                self.param.param.add(lr_mult=0)
            elif self.param.param[i].lr_mult != 0:
                raise self.error(f"param {i} has lr_mult {self.param.param[i].lr_mult:g}: the mean, variance and "
                                 f"scale factor are statistics, not learned; set lr_mult: 0 or leave param out")

    def reshape(self, bottom, top):
        if bottom[0].ndim > 1 and bottom[0].shape[1] != self.channels:
            raise self.error(f"bottom {bottom[0].shape} has {bottom[0].shape[1]} channels, the statistics "
                             f"{self.channels}")
        if top[0] is not bottom[0]:
            top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        xp, x = self.xp(bottom[0]), bottom[0].data
        t = x.dtype.type
        x3 = x.reshape(x.shape[0], self.channels, -1)              # (N, C, spatial)
        mean_blob, var_blob, factor = (b.data for b in self.blobs)
        if self.use_global_stats:
            scale = xp.where(factor == 0, t(0), 1 / xp.where(factor == 0, t(1), factor))
            mean, var = mean_blob * scale, var_blob * scale
        else:
            mean = x3.mean(axis=(0, 2))
            centered = x3 - mean[:, None]
            var = (centered * centered).mean(axis=(0, 2))
            maf = t(self.moving_average_fraction)
            m = x.size // self.channels
            factor *= maf
            factor += 1
            mean_blob *= maf
            mean_blob += mean
            var_blob *= maf
            var_blob += var * (t(m) / t(m - 1) if m > 1 else t(1))
        self.std = xp.sqrt(var + t(self.eps))[:, None]
        if self.use_global_stats:                # backward needs only std: y = x * a + b, two passes in place
            inv = 1 / self.std
            y3 = top[0].data.reshape(x3.shape)
            xp.multiply(x3, inv, out=y3)
            y3 += -mean[:, None] * inv
        else:
            centered /= self.std
            self.x_norm = centered               # kept apart from the top, which later in-place layers overwrite
            top[0].data[...] = centered.reshape(x.shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        shape = bottom[0].shape
        dy = top[0].diff.reshape(shape[0], self.channels, -1)
        if self.use_global_stats:
            dx = dy / self.std
        else:
            y = self.x_norm
            dx = dy - dy.mean(axis=(0, 2), keepdims=True) - y * (dy * y).mean(axis=(0, 2), keepdims=True)
            dx /= self.std
        bottom[0].diff[...] = dx.reshape(shape)
