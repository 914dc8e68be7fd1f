"""Input layer ("Input"): tops whose shapes come from input_param and whose data the user sets.
Semantics: caffe input_layer.cpp. Net.forward(name=array) reshapes them to the array."""
from layers.base import Layer
from layers.registry import register


@register("Input")
class InputLayer(Layer):
    exact_num_bottom = 0
    min_num_top = 1

    def setup(self, bottom, top):
        shapes = self.param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise self.error(f"input_param needs 0, 1 or {len(top)} shapes (one per top), got {len(shapes)}")
        for i, t in enumerate(top):
            if shapes:
                t.reshape(*shapes[0 if len(shapes) == 1 else i].dim)

    def reshape(self, bottom, top):
        pass                                  # the data's shape is whatever the user put there

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass
