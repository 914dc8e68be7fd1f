"""ContrastiveLoss layer ("ContrastiveLoss"): for feature pairs a, b (N x C x 1 x 1) and sim (N), with d the
Euclidean distance: similar pairs (sim != 0, as int) add d^2, dissimilar pairs max(margin - d, 0)^2, or with
legacy_version max(margin - d^2, 0); the sum is divided by 2 N. Semantics: caffe contrastive_loss_layer.cpp,
whose dissimilar-pair gradient divides by d + 1e-4. a and b get gradients (b the negated one), sim none."""
import numpy

from layers.base import LossLayer
from layers.registry import register


@register("ContrastiveLoss")
class ContrastiveLossLayer(LossLayer):
    exact_num_bottom = 3

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def setup(self, bottom, top):
        p = self.param.contrastive_loss_param
        self.margin, self.legacy = p.margin, p.legacy_version

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        a, b, sim = bottom
        if a.ndim < 2 or a.channels != b.channels or a.count != b.count or a.count != a.num * a.channels:
            raise self.error(f"a and b must both be N x C x 1 x 1 with the same C, got {a.shape} and {b.shape}")
        if sim.count != a.num:
            raise self.error(f"sim must hold one value per pair (N x 1 x 1 x 1), got {sim.shape} for N = {a.num}")

    def forward(self, bottom, top):
        xp = self.xp(bottom[0])
        n = bottom[0].shape[0]
        self.diff = (bottom[0].data - bottom[1].data).reshape(n, -1)
        self.dist_sq = (self.diff * self.diff).sum(axis=1)
        self.similar = bottom[2].data.reshape(-1).astype(numpy.int64) != 0
        t = self.diff.dtype.type
        if self.legacy:
            self.mdist = t(self.margin) - self.dist_sq
            dissimilar = xp.maximum(self.mdist, t(0))
        else:
            self.dist = xp.sqrt(self.dist_sq)
            self.mdist = t(self.margin) - self.dist
            dissimilar = xp.maximum(self.mdist, t(0)) ** 2
        loss = xp.where(self.similar, self.dist_sq, dissimilar).sum(dtype=numpy.float64)
        top[0].data[...] = loss / n / 2

    def backward(self, top, propagate_down, bottom):
        if propagate_down[2]:
            raise self.error("cannot backpropagate to the similarity input; set propagate_down: false for it")
        xp = self.xp(bottom[0])
        n = self.diff.shape[0]
        t = self.diff.dtype.type
        for i, sign in ((0, 1), (1, -1)):
            if not propagate_down[i]:
                continue
            alpha = t(sign * float(top[0].diff) / n)
            beta = -alpha if self.legacy else -alpha * self.mdist / (self.dist + t(1e-4))
            beta = xp.where(self.mdist > 0, beta, t(0))
            factor = xp.where(self.similar, alpha, beta).astype(self.diff.dtype)
            bottom[i].diff[...] = (factor[:, None] * self.diff).reshape(bottom[i].shape)
