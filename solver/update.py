"""The update: Caffe's SGDSolver::ApplyUpdate without the loop (cf. caffe/src/caffe/solvers/sgd_solver.cpp).

Update(param, net) keeps the history of one update rule (history_slots arrays per learnable param, laid out as
Caffe's history_ is in the .solverstate: the first slot of every param, then the second) and applies a step in
Caffe's order: clip the gradients by their global L2 norm, then for each learnable param normalize (divide by
iter_size), regularize (L2 or L1 weight_decay * decay_mult), compute the update with local_rate = rate * lr_mult
(the rule's ComputeUpdateValue) and subtract it. Each rule is a small subclass in solver/sgd.py.
"""
import math

import numpy

from layers import backend
from solver.log import g, get_logger

log = get_logger()

_CHUNK = 1 << 20      # elements per step of add_scaled: a 4 MB temporary rather than a weight-sized one


def add_scaled(y, alpha, x):
    """y += alpha * x (Caffe's caffe_axpy), in chunks on the CPU so that no weight-sized temporary is made (VGG's
    fc6 has 103M weights: 411 MB allocated and freed per step otherwise). The same float32 arithmetic either way."""
    if backend.is_gpu(y) or y.size <= _CHUNK or not (y.flags.c_contiguous and x.flags.c_contiguous):
        y += alpha * x
        return
    ys, xs = y.reshape(-1), x.reshape(-1)
    for start in range(0, ys.size, _CHUNK):
        ys[start:start + _CHUNK] += alpha * xs[start:start + _CHUNK]


def on_device(array, blob):
    """`array` on `blob`'s device (moved there when it is elsewhere)."""
    if backend.get_array_module(array) is blob.xp:
        return array
    return blob.xp.asarray(backend.to_cpu(array))


class Update:
    """One update rule on the learnable params of `net`, with its history. Subclasses set `type` (Caffe's solver
    type string), `history_slots`, and define compute(param_id, rate); check(param) holds their CHECKs."""
    type = None
    history_slots = 1             # history arrays per learnable param (AdaDelta and Adam keep 2)

    def __init__(self, param, net):
        self.param, self.net = param, net
        self.iter = 0             # the iteration being applied (Adam's bias correction counts it)
        self.history = [blob.xp.zeros(blob.shape, dtype=blob.dtype) for blob in self.history_params()]

    @classmethod
    def check(cls, param):
        """The rule's CHECKs of its settings (Caffe's, in each solver's constructor): ValueError saying what to
        change."""

    def history_params(self):
        """The learnable param each history array belongs to, in history order."""
        return self.net.learnable_params * self.history_slots

    def to_device(self):
        """Move the history to where each param is (after the net moved)."""
        self.history = [on_device(h, blob) for h, blob in zip(self.history, self.history_params())]

    def history_of(self, index):
        """History array #index, on its param's device."""
        params = self.net.learnable_params        # history_params()[index], without building that list per call
        self.history[index] = on_device(self.history[index], params[index % len(params)])
        return self.history[index]

    def apply(self, rate, iteration):
        """Clip, then per param normalize, regularize, compute the update; then each param -= its update."""
        self.iter = iteration
        self.clip_gradients()
        pending = []
        for param_id in range(len(self.net.learnable_params)):
            self.normalize(param_id)
            if self.fused(param_id, rate):
                continue                       # regularized, updated and applied on the device in one pass
            self.regularize(param_id)
            self.compute(param_id, rate)
            pending.append(self.net.learnable_params[param_id])
        for blob in pending:
            data = blob.data
            data -= blob.diff

    def fused(self, param_id, rate):
        """Regularize, compute and apply the update of one param in one step where a rule can (SGD on the GPU);
        True when done. Params are independent, so applying one before computing the next changes nothing."""
        return False

    def compute(self, param_id, rate):
        """Turn the diff of learnable param #param_id into the update (subtracted from the param)."""
        raise NotImplementedError(f"{type(self).__name__} has no update rule")

    def grad_l2norm(self):
        """The global L2 norm of all learnable params' diffs (what clip_gradients compares against), summed on
        the params' device and read once."""
        squares = [(blob.diff.astype(numpy.float64) ** 2).sum() for blob in self.net.learnable_params]
        return math.sqrt(float(sum(squares))) if squares else 0.0

    def clip_gradients(self):
        clip = self.param.clip_gradients
        if clip < 0:
            return
        norm = self.grad_l2norm()
        if norm > clip:
            scale = numpy.float32(clip / norm)
            log.info(f"Gradient clipping: scaling down gradients (L2 norm {g(norm)} > {g(clip)}) "
                     f"by scale factor {g(scale)}")
            for blob in self.net.learnable_params:
                diff = blob.diff
                diff *= scale

    def normalize(self, param_id):
        if self.param.iter_size != 1:
            diff = self.net.learnable_params[param_id].diff
            diff *= numpy.float32(1.0 / self.param.iter_size)

    def decay(self, param_id):
        """weight_decay * decay_mult of learnable param #param_id, in float32 as Caffe computes it."""
        return numpy.float32(self.param.weight_decay) * numpy.float32(self.net.params_weight_decay[param_id])

    def regularize(self, param_id):
        blob = self.net.learnable_params[param_id]
        decay = self.decay(param_id)
        if not decay:
            return
        diff = blob.diff
        if self.param.regularization_type == "L2":
            add_scaled(diff, decay, blob.data)
        else:
            diff += decay * blob.xp.sign(blob.data)

    def local_rate(self, param_id, rate):
        return numpy.float32(rate) * numpy.float32(self.net.params_lr[param_id])
