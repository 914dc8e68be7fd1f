"""Caffe's six update rules (cf. caffe/src/caffe/solvers/*_solver.cpp, ComputeUpdateValue), written once with xp.

Each turns the (clipped, normalized, regularized) diff of a learnable param into the update that is subtracted
from it, with local_rate = rate * lr_mult, and keeps its history (solver/update.py): one array per learnable param
(in net.learnable_params order), two for AdaDelta and Adam (the second set after the first), as Caffe's
history_ is laid out in the .solverstate. UPDATES maps Caffe's solver type strings to them.
"""
import numpy

from layers import backend
from solver.update import Update

f32 = numpy.float32

# SGD's whole step for one param on the GPU in one pass (Caffe's sgd_update_gpu, with the L2 decay and the
# net's update folded in), where the xp code below reads and writes each array several times. Its numpy twin,
# and test oracle, is Update.regularize + SGD.compute + Update.apply's data -= diff.
_sgd_update = backend.ElementwiseKernel(
    "T momentum, T local_rate, T decay",
    "T data, T diff, T history",
    """
    T g = diff + decay * data;
    T h = momentum * history + local_rate * g;
    history = h;
    diff = h;
    data -= h;
    """,
    "fcn_sgd_update")


class SGD(Update):
    """Stochastic gradient descent with momentum: h = momentum * h + local_rate * g; update = h."""
    type = "SGD"

    def compute(self, param_id, rate):
        g = self.net.learnable_params[param_id].diff
        h = self.history_of(param_id)
        h *= f32(self.param.momentum)
        g *= self.local_rate(param_id, rate)        # in place: the diff becomes the update just below anyway
        h += g
        g[...] = h

    def fused(self, param_id, rate):
        """With L2 decay: regularize, update and apply in one kernel on the GPU (see _sgd_update), and on the CPU
        in one pass of cache-sized chunks over the kernels' threads (see _sgd_update_cpu)."""
        blob = self.net.learnable_params[param_id]
        if self.param.regularization_type != "L2":
            return False
        momentum, local_rate, decay = f32(self.param.momentum), self.local_rate(param_id, rate), self.decay(param_id)
        history = self.history_of(param_id)
        if backend.is_gpu(blob.data):
            t = blob.dtype.type
            _sgd_update(t(momentum), t(local_rate), t(decay), blob.data, blob.diff, history)
            return True
        arrays = (blob.data, blob.diff, history)
        if not all(type(a) is numpy.ndarray and a.flags.c_contiguous for a in arrays):
            return False
        _sgd_update_cpu(momentum, local_rate, decay, *arrays)
        return True


_CPU_CHUNK = 1 << 16       # elements per chunk: data, diff and history (768 KB in float32) stay in the core's cache


def _sgd_update_cpu(momentum, local_rate, decay, data, diff, history):
    """_sgd_update's CPU twin: Update.regularize (L2) + SGD.compute + Update.apply's data -= diff, the same numpy
    operations in the same order, so the same bits, but chunk by chunk: each array is read and written once
    instead of once per operation (VGG's fc6 holds 103M weights: 411 MB an array), on the kernels' threads."""
    from layers.kernels.threads import parallel_map
    x, d, h = (a.reshape(-1) for a in (data, diff, history))

    def chunk(i):
        s = slice(i * _CPU_CHUNK, (i + 1) * _CPU_CHUNK)
        xs, ds, hs = x[s], d[s], h[s]
        if decay:
            ds += decay * xs
        hs *= momentum
        ds *= local_rate
        hs += ds
        ds[...] = hs
        xs -= ds

    parallel_map(chunk, -(-x.size // _CPU_CHUNK))


class Nesterov(Update):
    """Nesterov's accelerated gradient: step back along the old momentum, then over the new one."""
    type = "Nesterov"

    def compute(self, param_id, rate):
        blob = self.net.learnable_params[param_id]
        momentum = f32(self.param.momentum)
        h = self.history_of(param_id)
        previous = h.copy()
        h *= momentum
        h += self.local_rate(param_id, rate) * blob.diff
        blob.diff[...] = (f32(1) + momentum) * h - momentum * previous


class AdaGrad(Update):
    """AdaGrad: h += g^2; update = local_rate * g / (sqrt(h) + delta)."""
    type = "AdaGrad"

    @classmethod
    def check(cls, param):
        if param.momentum != 0:
            raise ValueError("momentum cannot be used with AdaGrad (set momentum: 0)")

    def compute(self, param_id, rate):
        blob = self.net.learnable_params[param_id]
        xp, g = blob.xp, blob.diff
        h = self.history_of(param_id)
        h += g * g
        blob.diff[...] = self.local_rate(param_id, rate) * (g / (xp.sqrt(h) + f32(self.param.delta)))


class RMSProp(Update):
    """RMSProp: h = rms_decay * h + (1 - rms_decay) * g^2; update = local_rate * g / (sqrt(h) + delta)."""
    type = "RMSProp"

    @classmethod
    def check(cls, param):
        if param.momentum != 0:
            raise ValueError("momentum cannot be used with RMSProp (set momentum: 0)")
        if not 0 <= param.rms_decay < 1:
            raise ValueError(f"rms_decay must be in [0, 1), got {param.rms_decay:g}")

    def compute(self, param_id, rate):
        blob = self.net.learnable_params[param_id]
        xp, g = blob.xp, blob.diff
        decay = f32(self.param.rms_decay)
        h = self.history_of(param_id)
        h *= decay
        h += (f32(1) - decay) * (g * g)
        blob.diff[...] = self.local_rate(param_id, rate) * (g / (xp.sqrt(h) + f32(self.param.delta)))


class AdaDelta(Update):
    """AdaDelta: scale g by sqrt((delta + E[dx^2]) / (delta + E[g^2])), both running means with `momentum`."""
    type = "AdaDelta"
    history_slots = 2

    def compute(self, param_id, rate):
        blob = self.net.learnable_params[param_id]
        xp, g = blob.xp, blob.diff
        momentum, delta = f32(self.param.momentum), f32(self.param.delta)
        grad_history = self.history_of(param_id)
        update_history = self.history_of(param_id + len(self.net.learnable_params))
        grad_history *= momentum
        grad_history += (f32(1) - momentum) * (g * g)
        g *= xp.sqrt((delta + update_history) / (delta + grad_history))
        update_history *= momentum
        update_history += (f32(1) - momentum) * (g * g)
        g *= self.local_rate(param_id, rate)


class Adam(Update):
    """Adam: m and v running means of g and g^2 (momentum, momentum2), bias-corrected by the step count."""
    type = "Adam"
    history_slots = 2

    def compute(self, param_id, rate):
        blob = self.net.learnable_params[param_id]
        xp, g = blob.xp, blob.diff
        beta1, beta2 = f32(self.param.momentum), f32(self.param.momentum2)
        t = self.iter + 1
        correction = f32(numpy.sqrt(f32(1) - float(beta2) ** t) / (f32(1) - float(beta1) ** t))
        m = self.history_of(param_id)
        v = self.history_of(param_id + len(self.net.learnable_params))
        m *= beta1
        m += (f32(1) - beta1) * g
        v *= beta2
        v += (f32(1) - beta2) * (g * g)
        blob.diff[...] = (self.local_rate(param_id, rate) * correction) * (m / (xp.sqrt(v) + f32(self.param.delta)))


UPDATES = {rule.type: rule for rule in (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam)}
