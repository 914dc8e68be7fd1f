"""Eltwise layer ("Eltwise"): element-wise PROD, SUM (with optional per-bottom coeff) or MAX of equal-shaped
bottoms. Semantics: caffe eltwise_layer.cpp (the CPU path, which the golden numbers come from):
- SUM: top = sum_i coeff_i * bottom_i; each bottom's gradient is coeff_i * top diff.
- PROD: with stable_prod_grad (the default) bottom_i's gradient is top diff times the product of the other
  bottoms; without it, top diff * top / bottom_i (unstable where bottom_i is 0).
- MAX: the gradient goes to the bottom that won. Ties: bottom 1 beats bottom 0 (Caffe compares a > b), and from
  bottom 2 on an earlier winner is kept (Caffe updates only on a strict >).
"""
import numpy

from layers.base import Layer
from layers.registry import register
from netspec import caffe_pb2

PROD, SUM, MAX = (caffe_pb2.EltwiseParameter.PROD, caffe_pb2.EltwiseParameter.SUM,
                  caffe_pb2.EltwiseParameter.MAX)


@register("Eltwise")
class EltwiseLayer(Layer):
    min_num_bottom = 2
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.param.eltwise_param
        self.operation = p.operation
        if p.coeff and len(p.coeff) != len(bottom):
            raise self.error(f"eltwise_param.coeff needs one value per bottom blob: {len(bottom)} bottoms, "
                             f"{len(p.coeff)} coeff values")
        if p.coeff and self.operation != SUM:
            raise self.error("eltwise_param.coeff applies to operation SUM only; remove it or use SUM")
        self.coeffs = list(p.coeff) or [1.0] * len(bottom)
        self.stable_prod_grad = p.stable_prod_grad

    def reshape(self, bottom, top):
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != bottom[0].shape:
                raise self.error(f"all bottoms must have the same shape: bottom[0] '{self.param.bottom[0]}' is "
                                 f"{bottom[0].shape}, bottom[{i}] '{self.param.bottom[i]}' is {b.shape} "
                                 f"(crop one to the other first)")
        if top[0] is not bottom[0]:
            top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        if self.operation == PROD:
            out = bottom[0].data * bottom[1].data
            for b in bottom[2:]:
                out *= b.data
        elif self.operation == SUM:
            out = xp.zeros_like(bottom[0].data)
            for c, b in zip(self.coeffs, bottom):
                out += b.data if c == 1 else b.data.dtype.type(c) * b.data
        else:
            a, b = bottom[0].data, bottom[1].data
            first = a > b
            out = xp.where(first, a, b)
            self.mask = xp.where(first, 0, 1).astype(numpy.int32)
            for i, b in enumerate(bottom[2:], 2):
                better = b.data > out
                out = xp.where(better, b.data, out)
                self.mask[better] = i
        top[0].data[...] = out

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        grads = []
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                grads.append(None)
            elif self.operation == PROD:
                if self.stable_prod_grad:
                    others = [o.data for j, o in enumerate(bottom) if j != i]
                    grad = others[0].copy()
                    for o in others[1:]:
                        grad *= o
                    grads.append(grad * dy)
                else:
                    grads.append(top[0].data / b.data * dy)
            elif self.operation == SUM:
                c = self.coeffs[i]
                grads.append(dy.copy() if c == 1 else dy.dtype.type(c) * dy)
            else:
                grads.append(dy * (self.mask == i))
        # assign only after every gradient is computed: an in-place top shares its diff with bottom 0
        for b, grad in zip(bottom, grads):
            if grad is not None:
                b.diff[...] = grad
