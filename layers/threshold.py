"""Threshold layer ("Threshold"): y = 1 if x > threshold else 0 (strictly greater, compared in the data's
dtype). Semantics: caffe threshold_layer.cpp. Forward only: Caffe has no gradient here."""
from layers.base import NeuronLayer
from layers.registry import register


@register("Threshold")
class ThresholdLayer(NeuronLayer):
    def setup(self, bottom, top):
        self.threshold = self.param.threshold_param.threshold

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[...] = x > x.dtype.type(self.threshold)

    def backward(self, top, propagate_down, bottom):
        if any(propagate_down):
            raise self.error("Threshold has no gradient (a step function); set propagate_down: false for its "
                             "bottom")
