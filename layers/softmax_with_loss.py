"""SoftmaxWithLoss layer ("SoftmaxWithLoss"): softmax then multinomial logistic loss, with ignore_label and
Caffe's normalization modes. Semantics: caffe softmax_loss_layer.cpp.

loss = -sum(log(max(p[label], FLT_MIN))) / normalizer over non-ignored cells. The legacy `normalize` field
means VALID (true) or BATCH_SIZE (false) when `normalization` is unset; every normalizer is at least 1.
FCN trains with `normalize: false` and batch 1: a sum over pixels, hence its tiny learning rates.
"""
import numpy

from layers.base import LossLayer
from layers.registry import register
from layers.softmax import canonical_axis, softmax
from netspec import caffe_pb2

NORM = caffe_pb2.LossParameter
FLT_MIN = numpy.finfo(numpy.float32).tiny


@register("SoftmaxWithLoss")
class SoftmaxWithLossLayer(LossLayer):
    max_num_top = 2               # loss, and optionally the probabilities

    def setup(self, bottom, top):
        lp = self.param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        if lp.HasField("normalization"):
            self.normalization = lp.normalization
        elif lp.HasField("normalize"):
            self.normalization = NORM.VALID if lp.normalize else NORM.BATCH_SIZE
        else:
            self.normalization = NORM.VALID
        self.axis = canonical_axis(self, self.param.softmax_param.axis, bottom[0].ndim)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        self.outer = int(numpy.prod(shape[:self.axis]))
        self.inner = int(numpy.prod(shape[self.axis + 1:]))
        if bottom[1].count != self.outer * self.inner:
            raise self.error(
                f"the label blob must have one value per prediction cell: the prediction {shape} has "
                f"{self.outer}x{self.inner} = {self.outer * self.inner} cells (all axes but {self.axis}), the "
                f"label {bottom[1].shape} has {bottom[1].count} values. For segmentation use N x 1 x H x W labels; "
                f"a crop may be missing or misaligned.")
        top[0].reshape()
        if len(top) > 1:
            top[1].reshape(*shape)

    def _labels(self, bottom):
        """Labels as int indices shaped (outer, 1, inner), with a mask of the cells that count."""
        xp = self.xp(bottom[0])
        label = bottom[1].data.reshape(self.outer, 1, self.inner)
        labels = label.astype(numpy.int64)
        valid = xp.ones(labels.shape, dtype=bool) if self.ignore_label is None else labels != self.ignore_label
        channels = bottom[0].shape[self.axis]
        bad = valid & ((labels < 0) | (labels >= channels))
        if bool(bad.any()):
            values = sorted({int(v) for v in xp.unique(labels[bad])[:10].tolist()})
            raise self.error(
                f"label values {values} are outside [0, {channels}) for {channels} classes"
                + (f" and are not the ignore_label {self.ignore_label}" if self.ignore_label is not None else "")
                + ". Labels must be class indices (not colours or 0/255 masks); set loss_param { ignore_label: 255 }"
                  " to skip void pixels.")
        return xp.where(valid, labels, 0), valid

    def _normalizer(self, valid_count):
        mode = self.normalization
        if mode == NORM.FULL:
            n = self.outer * self.inner
        elif mode == NORM.VALID:
            n = valid_count if self.ignore_label is not None else self.outer * self.inner
        elif mode == NORM.BATCH_SIZE:
            n = self.outer
        else:
            n = 1
        return max(1.0, float(n))

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        channels = bottom[0].shape[self.axis]
        scores = bottom[0].data.reshape(self.outer, channels, self.inner)
        self.prob = softmax(scores, axis=1)
        labels, valid = self._labels(bottom)
        self.labels, self.valid = labels, valid
        picked = xp.take_along_axis(self.prob, labels, axis=1)
        self.picked = picked
        dtype = scores.dtype.type
        logs = -xp.log(xp.maximum(picked, dtype(FLT_MIN)))
        loss = (logs * valid).sum(dtype=numpy.float64) if self.ignore_label is not None else logs.sum(dtype=numpy.float64)
        self.valid_count = int(valid.sum()) if self.ignore_label is not None else self.outer * self.inner
        top[0].data[...] = loss / self._normalizer(self.valid_count)
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(top[1].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot back-propagate to the label input; set propagate_down: false for it")
        if not propagate_down[0]:
            return
        xp = self.xp(bottom[0])
        grad = bottom[0].diff.reshape(self.prob.shape)
        grad[...] = self.prob
        xp.put_along_axis(grad, self.labels, self.picked - 1, axis=1)      # p - onehot(label)
        if self.ignore_label is not None:
            grad *= self.valid
        grad *= grad.dtype.type(float(top[0].diff) / self._normalizer(self.valid_count))
