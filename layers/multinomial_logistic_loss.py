"""MultinomialLogisticLoss layer ("MultinomialLogisticLoss"): -sum log(max(p[n, label_n], 1e-20)) / N on
probabilities (N x dim). Semantics: caffe multinomial_logistic_loss_layer.cpp; the gradient is -1 / (N p) at each
item's label and 0 elsewhere."""
import numpy

from layers import backend
from layers.base import LossLayer
from layers.registry import register

LOG_THRESHOLD = 1e-20             # Caffe's kLOG_THRESHOLD


def labels_of(layer, bottom, classes):
    """bottom[1] as int class indices (one per item; Caffe truncates the float), checked against `classes`."""
    xp = layer.xp(bottom[1])
    labels = bottom[1].data.reshape(-1).astype(numpy.int64)
    if labels.size and bool(((labels < 0) | (labels >= classes)).any()):
        bad = sorted({int(v) for v in xp.unique(labels[(labels < 0) | (labels >= classes)])[:10].tolist()})
        raise layer.error(f"label values {bad} are outside [0, {classes}); labels must be class indices")
    return labels


def picked(probs, labels):
    """probs[n, labels[n]] for each row n of a (N, dim) array."""
    xp = backend.get_array_module(probs)
    return xp.take_along_axis(probs, labels.reshape(-1, 1), axis=1)


@register("MultinomialLogisticLoss")
class MultinomialLogisticLossLayer(LossLayer):
    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[1].count != bottom[1].shape[0]:
            raise self.error(f"the label needs one value per item (channels, height and width 1), got "
                             f"{bottom[1].shape}")

    def forward(self, bottom, top):
        n = bottom[0].shape[0]
        probs = bottom[0].data.reshape(n, -1)
        self.labels = labels_of(self, bottom, probs.shape[1])
        p = self.xp(bottom[0]).maximum(picked(probs, self.labels), probs.dtype.type(LOG_THRESHOLD))
        top[0].data[...] = -self.xp(bottom[0]).log(p).sum(dtype=numpy.float64) / n

    def backward(self, top, propagate_down, bottom):
        self.refuse_label_gradient(propagate_down)
        if not propagate_down[0]:
            return
        xp = self.xp(bottom[0])
        n = bottom[0].shape[0]
        probs = bottom[0].data.reshape(n, -1)
        grad = bottom[0].diff.reshape(n, -1)
        grad[...] = 0
        scale = probs.dtype.type(-float(top[0].diff) / n)
        xp.put_along_axis(grad, self.labels.reshape(-1, 1),
                          scale / xp.maximum(picked(probs, self.labels), probs.dtype.type(LOG_THRESHOLD)), axis=1)
