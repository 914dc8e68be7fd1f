"""HingeLoss layer ("HingeLoss"): one-vs-all hinge loss of scores (N x dim) against int labels. Semantics: caffe
hinge_loss_layer.cpp. Margins m_j = max(0, 1 + s_j) for j != label and max(0, 1 - s_label); the loss is
sum(m) / N (norm L1, the default) or sum(m^2) / N (L2). The gradient is sign(m) (L1) or 2 m (L2), negated at the
label, times top diff / N."""
import numpy

from layers.base import LossLayer
from layers.multinomial_logistic_loss import labels_of
from layers.registry import register
from netspec import caffe_pb2

L2 = caffe_pb2.HingeLossParameter.L2


@register("HingeLoss")
class HingeLossLayer(LossLayer):
    def setup(self, bottom, top):
        self.norm = self.param.hinge_loss_param.norm

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        n = bottom[0].shape[0]
        scores = bottom[0].data.reshape(n, -1)
        self.labels = labels_of(self, bottom, scores.shape[1])
        self.sign = xp.ones(scores.shape, dtype=scores.dtype)
        xp.put_along_axis(self.sign, self.labels.reshape(-1, 1), scores.dtype.type(-1), axis=1)
        self.margin = xp.maximum(scores * self.sign + scores.dtype.type(1), scores.dtype.type(0))
        total = (self.margin * self.margin).sum(dtype=numpy.float64) if self.norm == L2 else \
            self.margin.sum(dtype=numpy.float64)
        top[0].data[...] = total / n

    def backward(self, top, propagate_down, bottom):
        self.refuse_label_gradient(propagate_down)
        if not propagate_down[0]:
            return
        xp = self.xp(bottom[0])
        n = bottom[0].shape[0]
        t = self.margin.dtype.type
        if self.norm == L2:
            grad = self.margin * self.sign * t(2 * float(top[0].diff) / n)
        else:
            grad = xp.sign(self.margin) * self.sign * t(float(top[0].diff) / n)
        bottom[0].diff[...] = grad.reshape(bottom[0].shape)
