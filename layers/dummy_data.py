"""DummyData layer ("DummyData"): tops of fixed shapes filled by fillers, no bottoms.
Semantics: caffe dummy_data_layer.cpp. Shapes come from dummy_data_param.shape (one, or one per top) or the
legacy num/channels/height/width (each one, or one per top); data_filler gives 0 fillers (constant 0), one for
all tops, or one per top. A constant filler fills its tops once at setup; any other refills them every forward."""
from layers import fillers
from layers.base import Layer
from layers.registry import register
from netspec import caffe_pb2


@register("DummyData")
class DummyDataLayer(Layer):
    exact_num_bottom = 0
    min_num_top = 1

    def setup(self, bottom, top):
        p = self.param.dummy_data_param
        n = len(top)
        if len(p.data_filler) not in (0, 1, n):
            raise self.error(f"dummy_data_param needs 0, 1 or {n} data_filler (one per top), "
                             f"got {len(p.data_filler)}")
        legacy = {"num": p.num, "channels": p.channels, "height": p.height, "width": p.width}
        if any(len(v) for v in legacy.values()):
            if p.shape:
                raise self.error("give either dummy_data_param.shape or the legacy num/channels/height/width, "
                                 "not both")
            for field, values in legacy.items():
                if len(values) not in (1, n):
                    raise self.error(f"dummy_data_param.{field} must be given once or once per top ({n}), "
                                     f"got {len(values)}")
            shapes = [tuple(v[0 if len(v) == 1 else i] for v in legacy.values()) for i in range(n)]
        else:
            if len(p.shape) not in (1, n):
                raise self.error(f"dummy_data_param.shape must be given once or once per top ({n}), "
                                 f"got {len(p.shape)}")
            shapes = [tuple(p.shape[0 if len(p.shape) == 1 else i].dim) for i in range(n)]
        default = caffe_pb2.FillerParameter(type="constant", value=0)
        self.fillers = [p.data_filler[0 if len(p.data_filler) == 1 else i] if p.data_filler else default
                        for i in range(n)]
        self.refill = [f.type != "constant" for f in self.fillers]
        for t, shape, filler, refill in zip(top, shapes, self.fillers, self.refill):
            t.reshape(*shape)
            if not refill:
                self._fill(t, filler)        # constant tops are filled once, here

    def _fill(self, blob, filler):
        blob.data[...] = blob.xp.asarray(fillers.fill(filler, blob.shape, blob.dtype))

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        for t, filler, refill in zip(top, self.fillers, self.refill):
            if refill:
                self._fill(t, filler)

    def backward(self, top, propagate_down, bottom):
        pass
