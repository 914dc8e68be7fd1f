"""SigmoidCrossEntropyLoss layer ("SigmoidCrossEntropyLoss"): cross-entropy of sigmoid(x) against targets t in
[0, 1] of the same count: -sum [x (t - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0]))] (the stable form), over the
entries whose int(t) is not loss_param.ignore_label. Semantics: caffe sigmoid_cross_entropy_loss_layer.cpp:
normalization defaults to BATCH_SIZE (divide by N) here; the gradient is (sigmoid(x) - t) * top diff / normalizer,
0 at ignored entries; the target gets none."""
import numpy

from layers.base import NORM, LossLayer
from layers.registry import register
from layers.sigmoid import sigmoid


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(LossLayer):
    def setup(self, bottom, top):
        lp = self.param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        self.normalization = self.normalization_mode(NORM.BATCH_SIZE)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count != bottom[1].count:
            raise self.error(f"inputs must have the same count, got {bottom[0].shape} and {bottom[1].shape}")
        self.outer = bottom[0].shape[0]
        self.inner = bottom[0].count // max(self.outer, 1)

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        x = bottom[0].data.reshape(-1)
        target = bottom[1].data.reshape(-1)
        positive = (x >= 0).astype(x.dtype)
        loss = -(x * (target - positive) - xp.log1p(xp.exp(x - 2 * x * positive)))
        self.valid = None
        valid_count = x.size
        if self.ignore_label is not None:
            self.valid = target.astype(numpy.int64) != self.ignore_label
            loss = loss * self.valid
            valid_count = int(self.valid.sum())
        self.scale = self.normalizer(self.normalization, self.outer, self.inner, valid_count)
        top[0].data[...] = loss.sum(dtype=numpy.float64) / self.scale

    def backward(self, top, propagate_down, bottom):
        self.refuse_label_gradient(propagate_down, "target")
        if not propagate_down[0]:
            return
        xp = self.xp(bottom[0])
        x = bottom[0].data
        grad = sigmoid(xp, x) - bottom[1].data.reshape(x.shape)
        if self.valid is not None:
            grad *= self.valid.reshape(x.shape)
        bottom[0].diff[...] = grad * x.dtype.type(float(top[0].diff) / self.scale)
