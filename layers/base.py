"""The Layer base class: Caffe's lifecycle (cf. caffe/layer.hpp) with pycaffe's Python-layer contract.

The contract every layer follows:
- `setup(bottom, top)` reads the parameters, `reshape(bottom, top)` sizes the tops (it runs before every forward).
- `forward(bottom, top)` and `backward(top, propagate_down, bottom)` are the generic code, written once on the
  array module (`xp = self.xp(blob)`: numpy or CuPy). They are the reference path: always correct, on any device
  and any dtype, and what the tests compare everything else with.
- An optional fast path, `forward_fast(bottom, top)` / `backward_fast(top, propagate_down, bottom)`, is tried first
  (CPU BLAS or threads, a CUDA kernel). It returns True when it did the work, or False to decline (the wrong
  device, a layout it cannot take), and then the generic method runs. The two compute the same thing; tests call
  both and compare.
- What a layer needs from its Net is handed over when the Net builds it, never read from the Net:
  `base_dir` (where relative data paths are tried first), `source_dir` (the folder of the net definition),
  `need_backward` (whether a backward pass can reach this layer) and `bottom_need_backward` (per bottom). A layer
  built outside a Net keeps the defaults below (no folders; backward needed).
- The Net calls only the `run_*` wrappers, which are never overridden.
Bottom diffs are assigned; param diffs accumulate (`+=`), as in Caffe.
"""
import numpy

from layers import backend
from layers.blob import Blob
from netspec import caffe_pb2, paths

NORM = caffe_pb2.LossParameter          # normalization modes: FULL, VALID, BATCH_SIZE, NONE


class Layer:
    type = None                 # set by @register
    exact_num_bottom = None     # None = unchecked, as Caffe's -1
    min_num_bottom = None
    max_num_bottom = None
    exact_num_top = None
    min_num_top = None
    max_num_top = None
    auto_top_blobs = False      # Caffe's AutoTopBlobs: create tops up to min_num_top/exact_num_top
    is_loss = False             # a loss layer's first top gets loss_weight 1 by default
    # set by the Net when it builds the layer (see the module docstring)
    base_dir = None
    source_dir = None
    need_backward = True
    bottom_need_backward = None

    def __init__(self, param, phase="TEST"):
        self.param = param
        self.name = param.name
        self.phase = phase
        self.blobs = []                  # learnable parameter Blobs ([weight, bias] for most layers)
        self.param_propagate_down = []   # per blob: whether its diff is computed
        self.loss_weights = []           # per top

    # -- what subclasses implement
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        raise NotImplementedError(f"{self.type} layer '{self.name}' does not implement reshape")

    def forward(self, bottom, top):
        raise NotImplementedError(f"{self.type} layer '{self.name}' has no forward")

    def backward(self, top, propagate_down, bottom):
        raise NotImplementedError(f"{self.type} layer '{self.name}' has no backward")

    def forward_fast(self, bottom, top):
        """The optional fast path: True when it computed the forward, False to leave it to `forward`."""
        return False

    def backward_fast(self, top, propagate_down, bottom):
        """The optional fast path: True when it computed the backward, False to leave it to `backward`."""
        return False

    def allow_force_backward(self, bottom_index):
        """Whether force_backward may make this bottom get a gradient (labels say no)."""
        return True

    # -- helpers for subclasses
    def add_param_blob(self, shape, dtype, value=None):
        blob = Blob(*shape, dtype=dtype)       # zeros from calloc: no pages touched yet
        if value is not None and getattr(value, "shape", None) == tuple(shape):
            blob.data = value                 # take the filled array as is: no second write of a big blob
        elif value is not None:
            blob.data[...] = value
        self.blobs.append(blob)
        return blob

    @staticmethod
    def xp(blob):
        return backend.get_array_module(blob.data)

    def resolve_path(self, path):
        """A relative path from the net definition: under base_dir if it exists there, else as written
        (netspec.paths.resolve)."""
        return paths.resolve(path, self.base_dir)

    def searched(self):
        """Where resolve_path looks, for error messages."""
        return paths.searched(self.base_dir)

    def error(self, message):
        return ValueError(f"{self.type} layer '{self.name}': {message}")

    # -- the wrappers the Net calls (Caffe's SetUp / Forward / Backward)
    def run_setup(self, bottom, top):
        self.check_blob_counts(bottom, top)
        self.setup(bottom, top)
        self.reshape(bottom, top)
        self.set_loss_weights(top)

    def run_forward(self, bottom, top):
        self.reshape(bottom, top)
        if not self.forward_fast(bottom, top):
            self.forward(bottom, top)
        loss = 0.0
        for blob, weight in zip(top, self.loss_weights):
            if weight:
                loss += weight * float(blob.data.sum())
        return loss

    def run_backward(self, top, propagate_down, bottom):
        if not self.backward_fast(top, propagate_down, bottom):
            self.backward(top, propagate_down, bottom)

    def check_blob_counts(self, bottom, top):
        def check(blobs, what, exact, low, high):
            n = len(blobs)
            if exact is not None and n != exact:
                raise self.error(f"takes exactly {exact} {what} blob(s), got {n}")
            if low is not None and n < low:
                raise self.error(f"takes at least {low} {what} blob(s), got {n}")
            if high is not None and n > high:
                raise self.error(f"takes at most {high} {what} blob(s), got {n}")
        check(bottom, "bottom", self.exact_num_bottom, self.min_num_bottom, self.max_num_bottom)
        check(top, "top", self.exact_num_top, self.min_num_top, self.max_num_top)

    def set_loss_weights(self, top):
        if not self.param.loss_weight and self.is_loss:
            self.param.loss_weight.append(1.0)     # as Caffe's LossLayer::LayerSetUp: snapshots then say so
        weights = list(self.param.loss_weight)
        if len(weights) > len(top):
            raise self.error(f"has {len(weights)} loss_weight values but only {len(top)} top blob(s)")
        self.loss_weights = weights + [0.0] * (len(top) - len(weights))

    def __repr__(self):
        return f"<{self.type} layer '{self.name}'>"


class LossLayer(Layer):
    """A loss: bottoms (prediction, label); one scalar top with loss_weight 1 unless told otherwise."""
    is_loss = True
    exact_num_bottom = 2
    min_num_top = 1
    max_num_top = 1

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1       # the label never gets a gradient

    def refuse_label_gradient(self, propagate_down, what="label"):
        """Caffe's LOG(FATAL) when backward reaches bottom 1 (the label, or a loss's target)."""
        if propagate_down[1]:
            raise self.error(f"cannot backpropagate to the {what} input; set propagate_down: false for it")

    def reshape(self, bottom, top):
        """Caffe's LossLayer::Reshape: the bottoms agree on their first axis; the loss is a scalar."""
        if bottom[0].shape[:1] != bottom[1].shape[:1]:
            raise self.error(f"the data and label should have the same first dimension, got {bottom[0].shape} "
                             f"and {bottom[1].shape}")
        top[0].reshape()

    def normalization_mode(self, default):
        """loss_param's `normalization`, else the legacy `normalize` (true: VALID, false: BATCH_SIZE), else the
        layer's default (Caffe's loss layers read it so)."""
        lp = self.param.loss_param
        if lp.HasField("normalization"):
            return lp.normalization
        if lp.HasField("normalize"):
            return NORM.VALID if lp.normalize else NORM.BATCH_SIZE
        return default

    @staticmethod
    def normalizer(mode, outer, inner, valid_count):
        """Caffe's GetNormalizer: the divisor of a loss over outer x inner cells, valid_count of them not
        ignored; never below 1."""
        n = {NORM.FULL: outer * inner, NORM.VALID: valid_count, NORM.BATCH_SIZE: outer}.get(mode, 1)
        return max(1.0, float(n))


def dtype_of(bottom):
    """Layers compute in their input's dtype (float32 in nets, float64 in gradient checks)."""
    return bottom[0].dtype if bottom else numpy.float32


class NeuronLayer(Layer):
    """Caffe's NeuronLayer: one bottom, one top of its shape, or the bottom itself when run in place."""
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        if top[0] is not bottom[0]:
            top[0].reshape(*bottom[0].shape)
