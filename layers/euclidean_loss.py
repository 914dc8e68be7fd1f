"""EuclideanLoss layer ("EuclideanLoss"): sum((a - b)^2) / (2 N), N the first axis. Semantics: caffe
euclidean_loss_layer.cpp. Both bottoms get a gradient (neither is a label): da = (a - b) / N, db = -da."""
import numpy

from layers.base import LossLayer
from layers.registry import register


@register("EuclideanLoss")
class EuclideanLossLayer(LossLayer):
    def allow_force_backward(self, bottom_index):
        return True

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count // max(bottom[0].shape[0], 1) != bottom[1].count // max(bottom[1].shape[0], 1):
            raise self.error(f"inputs must have the same dimension, got {bottom[0].shape} and {bottom[1].shape}")

    def forward(self, bottom, top):
        self.diff = bottom[0].data - bottom[1].data.reshape(bottom[0].shape)
        dot = (self.diff.reshape(-1) @ self.diff.reshape(-1)).astype(numpy.float64)
        top[0].data[...] = dot / bottom[0].shape[0] / 2

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                alpha = self.diff.dtype.type(sign * float(top[0].diff) / bottom[0].shape[0])
                bottom[i].diff[...] = (alpha * self.diff).reshape(bottom[i].shape)
