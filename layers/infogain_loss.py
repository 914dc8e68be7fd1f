"""InfogainLoss layer ("InfogainLoss"): softmax over `axis`, then loss = -sum_k H[label, k] log(max(p_k, 1e-20))
per cell, over the cells whose label is not loss_param.ignore_label, divided by the normalizer (VALID by default).
The infogain matrix H (classes x classes) is a third bottom or a BlobProto file (infogain_loss_param.source); an
optional second top is the softmax. Semantics: caffe infogain_loss_layer.cpp (this commit applies the softmax
itself): dscore = (p * sum_k H[label, k] - H[label, :]) * top diff / normalizer, 0 at ignored cells.
Like Caffe, it refuses to backpropagate to the label or to H (force_backward into H is an error, as there)."""
import numpy

from layers.base import NORM, LossLayer
from layers.registry import register
from layers.softmax import canonical_axis, softmax
from netspec import caffe_pb2, io as netio

LOG_THRESHOLD = 1e-20             # Caffe's kLOG_THRESHOLD


@register("InfogainLoss")
class InfogainLossLayer(LossLayer):
    exact_num_bottom = None
    min_num_bottom = 2
    max_num_bottom = 3
    max_num_top = 2

    def setup(self, bottom, top):
        lp = self.param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        self.normalization = self.normalization_mode(NORM.VALID)
        self.infogain = None
        if len(bottom) < 3:
            source = self.param.infogain_loss_param.source
            if not source:
                raise self.error("the infogain matrix must be a third bottom or infogain_loss_param.source")
            path = self.resolve_path(source)
            try:
                with open(path, "rb") as f:
                    proto = caffe_pb2.BlobProto.FromString(f.read())
            except OSError as e:
                raise self.error(f"cannot read the infogain matrix {source} ({e.strerror}; "
                                 f"{self.searched()})") from None
            self.infogain = netio.blob_to_array(proto).astype(bottom[0].dtype)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.axis = canonical_axis(self, self.param.infogain_loss_param.axis, bottom[0].ndim)
        shape = bottom[0].shape
        self.outer = int(numpy.prod(shape[:self.axis]))
        self.inner = int(numpy.prod(shape[self.axis + 1:]))
        self.classes = shape[self.axis]
        if bottom[1].count != self.outer * self.inner:
            raise self.error(f"number of labels must match number of predictions: the prediction {shape} has "
                             f"{self.outer * self.inner} cells (all axes but {self.axis}), the label "
                             f"{bottom[1].shape} has {bottom[1].count} values")
        h = bottom[2].data if len(bottom) > 2 else self.infogain
        if h.size != self.classes * self.classes:
            raise self.error(f"the infogain matrix must be {self.classes} x {self.classes}, got shape {h.shape}")
        if len(top) > 1:
            top[1].reshape(*shape)

    def _matrix(self, bottom):
        h = bottom[2].data if len(bottom) > 2 else self.infogain
        return self.xp(bottom[0]).asarray(h).reshape(self.classes, self.classes)

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        scores = bottom[0].data.reshape(self.outer, self.classes, self.inner)
        self.prob = softmax(scores, axis=1)
        labels = bottom[1].data.reshape(self.outer, self.inner).astype(numpy.int64)
        self.valid = (xp.ones(labels.shape, dtype=bool) if self.ignore_label is None
                      else labels != self.ignore_label)
        bad = self.valid & ((labels < 0) | (labels >= self.classes))
        if bool(bad.any()):
            values = sorted({int(v) for v in xp.unique(labels[bad])[:10].tolist()})
            raise self.error(f"label values {values} are outside [0, {self.classes}) and are not the ignore_label")
        self.labels = xp.where(self.valid, labels, 0)
        self.rows = self._matrix(bottom)[self.labels].transpose(0, 2, 1)        # H[label] as (outer, C, inner)
        t = self.prob.dtype.type
        logs = xp.log(xp.maximum(self.prob, t(LOG_THRESHOLD)))
        loss = -((self.rows * logs).sum(axis=1) * self.valid).sum(dtype=numpy.float64)
        self.scale = self.normalizer(self.normalization, self.outer, self.inner, int(self.valid.sum()))
        top[0].data[...] = loss / self.scale
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(top[1].shape)

    def backward(self, top, propagate_down, bottom):
        self.refuse_label_gradient(propagate_down)
        if len(propagate_down) > 2 and propagate_down[2]:
            raise self.error("cannot backpropagate to the infogain matrix input; set propagate_down: false for it "
                             "(force_backward forces it, as in Caffe)")
        if not propagate_down[0]:
            return
        grad = self.prob * self.rows.sum(axis=1, keepdims=True) - self.rows
        grad *= self.valid[:, None, :]
        grad *= grad.dtype.type(float(top[0].diff) / self.scale)
        bottom[0].diff[...] = grad.reshape(bottom[0].shape)
