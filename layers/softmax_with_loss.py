"""SoftmaxWithLoss layer ("SoftmaxWithLoss"): softmax then multinomial logistic loss, with ignore_label and
Caffe's normalization modes. Semantics: caffe softmax_loss_layer.cpp.

loss = -sum(log(max(p[label], FLT_MIN))) / normalizer over non-ignored cells. The legacy `normalize` field
means VALID (true) or BATCH_SIZE (false) when `normalization` is unset; every normalizer is at least 1.
FCN trains with `normalize: false` and batch 1: a sum over pixels, hence its tiny learning rates.
"""
import numpy

from layers import backend
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
        self.normalization = self.normalization_mode(NORM.VALID)
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
        valid_count = valid_count if self.ignore_label is not None else self.outer * self.inner
        return self.normalizer(self.normalization, self.outer, self.inner, valid_count)

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
        kept = logs * valid if self.ignore_label is not None else logs
        loss = kept.sum(dtype=numpy.float64)
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

    # -- the fast path, GPU only: the same arithmetic in two kernels (below) and one read of three numbers
    def forward_fast(self, bottom, top):
        if not backend.is_gpu(bottom[0].data):
            return False
        channels = bottom[0].shape[self.axis]
        self.prob = softmax(bottom[0].data.reshape(self.outer, channels, self.inner), axis=1)
        loss, self.valid_count, bad = softmax_loss_forward_gpu(self.prob, bottom[1].data, self.ignore_label)
        if bad:
            self._labels(bottom)                       # raises the CPU path's error, naming the bad labels
        top[0].data[...] = loss / self._normalizer(self.valid_count)
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(top[1].shape)
        return True

    def backward_fast(self, top, propagate_down, bottom):
        if not backend.is_gpu(top[0].data):
            return False
        if propagate_down[1]:
            raise self.error("cannot back-propagate to the label input; set propagate_down: false for it")
        if not propagate_down[0]:
            return True
        grad = bottom[0].diff.reshape(self.prob.shape)
        # top diff / normalizer as the CPU path rounds it, left on the device: the backward reads nothing back
        scale = (top[0].diff.astype(numpy.float64) / self._normalizer(self.valid_count)).astype(grad.dtype)
        softmax_loss_backward_gpu(self.prob, bottom[1].data, scale, self.ignore_label, grad)
        return True


# SoftmaxWithLoss on the GPU (cf. caffe softmax_loss_layer.cu): the loss per cell and the gradient, with
# ignore_label, one ElementwiseKernel each. Their numpy twin, and test oracle, is forward/backward. Labels
# are truncated to int as the twin's astype does; labels out of range are counted, and the twin's check then raises.
_FLT_MIN = repr(float(numpy.finfo(numpy.float32).tiny))       # as a C literal: exact in float and double

_softmax_loss_fwd = backend.ElementwiseKernel(
    "raw T prob, T label, int32 channels, int32 inner, int32 ignore_label, bool has_ignore",
    "T loss, T valid, int32 bad",
    """
    int l = (int)label;
    loss = 0;
    valid = 0;
    bad = 0;
    if (!(has_ignore && l == ignore_label)) {
      if (l < 0 || l >= channels) {
        bad = 1;
      } else {
        T p = prob[((int)(i / inner) * channels + l) * inner + (int)(i % inner)];
        loss = -log(p > (T)FLT_MIN_ ? p : (T)FLT_MIN_);
        valid = 1;
      }
    }
    """.replace("FLT_MIN_", _FLT_MIN),
    "fcn_softmax_loss_fwd")

_softmax_loss_bwd = backend.ElementwiseKernel(
    "T prob, raw T label, T scale, int32 channels, int32 inner, int32 ignore_label, bool has_ignore",
    "T grad",
    """
    int s = i % inner;
    int c = i / inner % channels;
    int l = (int)label[(int)(i / ((ptrdiff_t)inner * channels)) * inner + s];
    if (has_ignore && l == ignore_label) {
      grad = 0;
    } else {
      grad = (c == l ? prob - (T)1 : prob) * scale;
    }
    """,
    "fcn_softmax_loss_bwd")


def softmax_loss_forward_gpu(prob, label, ignore_label):
    """prob (outer, C, inner) and label (outer * inner values) -> (sum of the losses, valid cells, bad labels),
    as host numbers: the one read the forward makes."""
    xp = backend.get_array_module(prob)
    outer, channels, inner = prob.shape
    label = label.reshape(outer * inner)
    loss = xp.empty(label.shape, dtype=prob.dtype)
    valid = xp.empty(label.shape, dtype=prob.dtype)
    bad = xp.empty(label.shape, dtype=numpy.int32)
    _softmax_loss_fwd(xp.ascontiguousarray(prob), label, channels, inner,
                      0 if ignore_label is None else ignore_label, ignore_label is not None, loss, valid, bad)
    sums = xp.stack([loss.sum(dtype=numpy.float64), valid.sum(dtype=numpy.float64), bad.sum(dtype=numpy.float64)])
    loss_sum, valid_count, bad_count = (float(v) for v in backend.to_cpu(sums))
    return loss_sum, int(valid_count), int(bad_count)


def softmax_loss_backward_gpu(prob, label, scale, ignore_label, grad):
    """grad (outer, C, inner) = (prob - onehot(label)) * scale, 0 at ignored cells; scale is a 0-d array on the
    device (top diff / normalizer), so the backward reads nothing back."""
    xp = backend.get_array_module(prob)
    outer, channels, inner = prob.shape
    _softmax_loss_bwd(prob, xp.ascontiguousarray(label.reshape(outer * inner)), scale, channels, inner,
                      0 if ignore_label is None else ignore_label, ignore_label is not None, grad)
