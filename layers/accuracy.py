"""Accuracy layer ("Accuracy"): the fraction of cells whose label is among the top_k scores along `axis`,
ignoring cells labelled ignore_label; an optional second top holds the accuracy per class.
Semantics: caffe accuracy_layer.cpp (CPU).

A cell counts as correct when fewer than top_k scores are >= the true class's score, itself excluded, so ties
go against the label. Per-class accuracy is 0 for a class with no (non-ignored) cells. Forward only: Caffe has
no gradient here, and asking for one is an error.
"""
import numpy

from layers.base import Layer
from layers.registry import register
from layers.softmax import canonical_axis


@register("Accuracy")
class AccuracyLayer(Layer):
    exact_num_bottom = 2
    min_num_top = 1
    max_num_top = 2

    def setup(self, bottom, top):
        p = self.param.accuracy_param
        self.top_k = p.top_k
        if self.top_k < 1:
            raise self.error(f"accuracy_param.top_k must be at least 1, got {self.top_k}")
        self.ignore_label = p.ignore_label if p.HasField("ignore_label") else None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        self.axis = canonical_axis(self, self.param.accuracy_param.axis, len(shape))
        self.outer = int(numpy.prod(shape[:self.axis]))
        self.inner = int(numpy.prod(shape[self.axis + 1:]))
        classes = shape[self.axis]
        if bottom[1].count != self.outer * self.inner:
            raise self.error(
                f"the number of labels must match the number of predictions: the scores {shape} have "
                f"{self.outer * self.inner} cells (all axes but axis {self.axis}), the label {bottom[1].shape} "
                f"has {bottom[1].count} values; for N x C x H x W scores use N x 1 x H x W labels")
        if self.top_k > classes:
            raise self.error(f"top_k {self.top_k} is more than the {classes} classes along axis {self.axis}")
        top[0].reshape()
        if len(top) > 1:
            top[1].reshape(classes)

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        classes = bottom[0].shape[self.axis]
        scores = bottom[0].data.reshape(self.outer, classes, self.inner)
        labels = bottom[1].data.reshape(self.outer, 1, self.inner).astype(numpy.int64)   # truncates, as C++
        if self.ignore_label is None:
            valid = xp.ones(labels.shape, dtype=bool)
        else:
            valid = labels != self.ignore_label
        if bool((valid & ((labels < 0) | (labels >= classes))).any()):
            bad = sorted({int(v) for v in xp.unique(labels[valid & ((labels < 0) | (labels >= classes))])[:10]})
            raise self.error(f"label values {bad} are outside [0, {classes}) and are not the ignore_label "
                             f"{self.ignore_label}; labels must be class indices")
        labels = xp.where(valid, labels, 0)
        true_score = xp.take_along_axis(scores, labels, axis=1)
        at_least = (scores >= true_score).sum(axis=1, keepdims=True)     # counts the true class itself
        correct = valid & (at_least <= self.top_k)
        dtype = top[0].data.dtype
        # float division in the blob's dtype, as Caffe's accuracy / count; computed where the data lives
        count = valid.sum().astype(dtype)
        top[0].data[...] = xp.where(count == 0, dtype.type(0), correct.sum().astype(dtype) / xp.maximum(count, 1))
        if len(top) > 1:
            hits = xp.bincount(labels[correct], minlength=classes).astype(dtype)
            cells = xp.bincount(labels[valid], minlength=classes).astype(dtype)
            top[1].data[...] = xp.where(cells == 0, dtype.type(0), hits / xp.maximum(cells, dtype.type(1)))

    def backward(self, top, propagate_down, bottom):
        if any(propagate_down):
            raise self.error("Accuracy has no gradient and cannot be used as a loss; set propagate_down: false "
                             "for its bottoms (or drop force_backward)")
