"""SoftmaxWithLoss on the GPU: the loss per cell and the gradient, with ignore_label, one ElementwiseKernel each
(cf. caffe softmax_loss_layer.cu). The probabilities come from the array-module softmax, as on the CPU.

The numpy twin, and test oracle, is SoftmaxWithLossLayer's forward/backward (layers/softmax_with_loss.py). On the
GPU the twin's int64 label copies, take/put_along_axis and its three host reads (the label check, the valid count,
the top diff) become two kernels and one read of three numbers: the loss sum, the valid count and the count of
labels out of range (which then raise the twin's error). Labels are truncated to int as the twin's astype does.
"""
import numpy

from layers import backend

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
