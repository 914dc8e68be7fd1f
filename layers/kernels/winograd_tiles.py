"""Winograd F(m x m, 3 x 3) on the CPU, for any tile size m, with every transform a BLAS call.

A 3x3 stride-1 convolution over tiles of m x m outputs (alpha = m + 2 input rows and columns per tile):
    y = A^T [ (G w G^T) * (B^T d B) ] A            (* elementwise over the alpha x alpha tile)
With the tile's alpha^2 values as a column, the two-sided transforms are one matrix each, the Kronecker
products KB = B^T (x) B^T, KG = G (x) G, KA = A^T (x) A^T. So a block of T tiles costs:
- gather: alpha^2 strided copies of the zero-padded input rows into D (alpha^2, C, T);
- V = KB D, one GEMM (K = alpha^2);
- alpha^2 GEMMs P_k = U_k V_k, (M x C) (C x T), where U = KG w: the only work that grows with C * M;
- Y = KA P, one GEMM, then one copy of Y's tiles into the output rows.
The multiplications per output fall from 9 C M (direct) to alpha^2 / m^2 C M: 4 C M for F(2x2) and 2.25 C M
for F(4x4), and the transforms are a few passes over the block, not the dozens of numpy passes a separable
transform takes.

The weight gradient is the same algorithm run backwards: dP = KA^T dY (the output-gradient tiles),
dU_k += dP_k V_k^T over every block, dW = KG^T dU; the multiplications per output gradient fall alike.
The data gradient needs nothing new: for stride 1 it is the convolution of dy with the flipped,
channel-transposed kernel at pad 2 - pad (see data_grad).

Rounding: the transforms have small exact coefficients (F(2x2): 0, +-1, +-1/2). F(4x4)'s G has 1/6 and 1/24
and its B^T and A^T reach 5 and 8, so its float32 error grows; tests/layers/kernels/test_winograd_tiles.py
measures it against the golden tolerances: layers/kernels/winograd.py uses F(4x4) for the gradients only. An
output depends on its whole tile's input, not only on its window, so equal windows in different tiles round
alike only to a few ulps (F(2x2) keeps a wholly constant tile exact); outputs whose windows see only padding
are never computed: they are the bias exactly.

Where it serves: winograd.py's data_grad and weight_grad (F(4x4)). Its forward keeps F(2x2) with transforms of
its own (pairwise numpy additions, measured faster than the Kronecker GEMMs at m = 2); transform_weights gives
both the G w G^T they need. reference_forward / reference_weight_grad are the plain float64 twins the tests
compare the blocked code with.
"""
from fractions import Fraction

import numpy

from layers.kernels.blas import Gemm as _Gemm, address as _address, split_gemm
from layers.kernels.geometry import touched as _touched
from layers.kernels.taps import Rows as _Rows
from layers.kernels.threads import POOL as _POOL, PerThread as _PerThread


# ---------------------------------------------------------------------------------------------------- schemes
def _polymul(p, q):
    r = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            r[i + j] += a * b
    return r


def toom_cook(m, points, r=3):
    """(AT, G, BT) of F(m, r) as exact Fractions, from m + r - 2 finite interpolation points and infinity:
    AT[i][j] = a_j^i, G[j][k] = a_j^k / prod_{l != j} (a_j - a_l), BT[j] = the coefficients of
    prod_{l != j} (x - a_l) (and of prod_l (x - a_l) for infinity)."""
    n = m + r - 1
    pts = [Fraction(p) for p in points]
    if len(pts) != n - 1 or len(set(pts)) != n - 1:
        raise ValueError(f"F({m}, {r}) needs {n - 1} distinct finite points, got {points}")
    at = [[p ** i for p in pts] + [Fraction(int(i == m - 1))] for i in range(m)]
    g, bt = [], []
    for j, a in enumerate(pts):
        f, poly = Fraction(1), [Fraction(1)]
        for l, b in enumerate(pts):
            if l != j:
                f *= a - b
                poly = _polymul(poly, [-b, Fraction(1)])
        g.append([a ** k / f for k in range(r)])
        bt.append(poly + [Fraction(0)] * (n - len(poly)))
    g.append([Fraction(int(k == r - 1)) for k in range(r)])
    full = [Fraction(1)]
    for b in pts:
        full = _polymul(full, [-b, Fraction(1)])
    bt.append(full)
    return checked(at, g, bt)


def checked(at, g, bt):
    """(AT, G, BT), after checking exactly that sum_j AT[i][j] G[j][k] BT[j][l] is 1 where l = i + k and 0
    elsewhere, i.e. that y_i = sum_k g_k d_(i+k)."""
    m, n, r = len(at), len(bt), len(g[0])
    for i in range(m):
        for k in range(r):
            for l in range(n):
                if sum(Fraction(at[i][j]) * Fraction(g[j][k]) * Fraction(bt[j][l]) for j in range(n)) != (l == i + k):
                    raise AssertionError(f"F({m}, {r}): these matrices do not compute a convolution")
    return at, g, bt


# F(2x2) takes Lavin and Gray's matrices (the points 0, 1, -1 and infinity, with the signs that make B^T and G
# plain sums and halvings), those of layers/kernels/winograd.py's forward, which shares transform_weights. For
# F(4x4), the points 0, 1, -1, 1/2, -2 keep the float32 error about 2.5x below Lavin's 0, +-1, +-2 (measured on
# VGG's layers; tests/layers/kernels/test_winograd_tiles.py): within the golden gradient tolerance (rtol 1e-4),
# not within the forward one (rtol 1e-5), so F(4x4) serves gradients only.
_HALF = Fraction(1, 2)
SCHEMES = {
    2: checked([[1, 1, 1, 0], [0, 1, -1, -1]],
               [[1, 0, 0], [_HALF, _HALF, _HALF], [_HALF, -_HALF, _HALF], [0, 0, 1]],
               [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
    4: toom_cook(4, (0, 1, -1, _HALF, -2)),
}


def matrices(m):
    """(AT, G, BT) of F(m x m, 3 x 3) as float64 arrays."""
    return tuple(numpy.array(a, dtype=numpy.float64) for a in SCHEMES[m])


def kron_matrices(m, dtype):
    """(KA (m^2, alpha^2), KB (alpha^2, alpha^2)) in `dtype`: the two-sided tile transforms as one matrix each."""
    at, _, bt = matrices(m)
    return (numpy.ascontiguousarray(numpy.kron(at, at), dtype=dtype),
            numpy.ascontiguousarray(numpy.kron(bt, bt), dtype=dtype))


def transform_weights(w, m):
    """U (alpha^2, M, C) = G w G^T of w (M, C, 3, 3): one GEMM with KG = G (x) G over the taps, in w's dtype."""
    w = numpy.ascontiguousarray(w)
    mo, c = w.shape[:2]
    kg = _kg(m, w.dtype)
    u = numpy.empty((kg.shape[0], mo, c), dtype=w.dtype)
    split_gemm(w.dtype, kg.shape[0], mo * c, 9, _address(kg), 9, _address(w), 9, _address(u), mo * c, trans_b=True)
    return u


def add_weight_grad(du, dw, m):
    """dw (M, C, 3, 3), C-contiguous, += G^T dU G of dU (alpha^2, M, C): the transpose of transform_weights."""
    mo, c = du.shape[1:]
    kg = _kg(m, du.dtype)
    split_gemm(du.dtype, mo * c, 9, kg.shape[0], _address(du), mo * c, _address(kg), 9, _address(dw), 9, beta=True,
               trans_a=True)
    return dw


def _kg(m, dtype):
    _, g, _ = matrices(m)
    return numpy.ascontiguousarray(numpy.kron(g, g), dtype=dtype)


# ---------------------------------------------------------------------------------------------------- twins
def _tiles(x, m, pad, th, tw):
    """Input tiles (C, th, tw, alpha, alpha) of x (C, H, W) zero-padded by pad, float64."""
    c, h, w = x.shape
    alpha = m + 2
    p = numpy.zeros((c, m * th + 2, m * tw + 2))
    ph, pw = pad
    ys, xs = slice(max(0, ph), min(ph + h, m * th + 2)), slice(max(0, pw), min(pw + w, m * tw + 2))
    p[:, ys, xs] = x[:, ys.start - ph:ys.stop - ph, xs.start - pw:xs.stop - pw]
    s = p.strides
    return numpy.lib.stride_tricks.as_strided(p, (c, th, tw, alpha, alpha), (s[0], m * s[1], m * s[2], s[1], s[2]))


def reference_forward(x, w, pad, m):
    """The Winograd algorithm on whole images in float64 (no bias): y (M, OH, OW) of x (C, H, W), pad <= 2."""
    c, h, wd = x.shape
    oh, ow = h + 2 * pad[0] - 2, wd + 2 * pad[1] - 2
    th, tw = -(-oh // m), -(-ow // m)
    at, g, bt = matrices(m)
    d = _tiles(x, m, pad, th, tw)
    v = numpy.einsum("ai,bj,ctsij->abcts", bt, bt, d)
    u = numpy.einsum("ai,bj,mcij->abmc", g, g, w.astype(numpy.float64))
    p = numpy.einsum("abmc,abcts->abmts", u, v)
    y = numpy.einsum("pa,qb,abmts->mtpsq", at, at, p).reshape(w.shape[0], m * th, m * tw)
    return y[:, :oh, :ow]


def reference_weight_grad(x, dy, pad, m):
    """The transposed algorithm in float64: dW (M, C, 3, 3) of the convolution x (C, H, W) -> dy (M, OH, OW)."""
    mo, oh, ow = dy.shape
    th, tw = -(-oh // m), -(-ow // m)
    at, g, bt = matrices(m)
    v = numpy.einsum("ai,bj,ctsij->abcts", bt, bt, _tiles(x, m, pad, th, tw))
    dyp = numpy.zeros((mo, m * th, m * tw))
    dyp[:, :oh, :ow] = dy
    dyt = dyp.reshape(mo, th, m, tw, m)
    dp = numpy.einsum("pa,qb,mtpsq->abmts", at, at, dyt)
    du = numpy.einsum("abmts,abcts->abmc", dp, v)
    return numpy.einsum("ai,bj,abmc->mcij", g, g, du)


# ---------------------------------------------------------------------------------------------------- blocked
BLOCK_BYTES = 4 << 20          # each of a block's two transform buffers (alpha^2 x max(C, M) x tiles values)...
MIN_TILES = 192                # ... but a block's GEMMs at least this wide (narrower ones run far below BLAS's peak)
# (measured on FCN's layers: 4 MB blocks run conv1_2's gradients ~15% faster than 16 MB ones and the rest alike,
# and keep the scratch, two blocks a thread, at ~30 MB; the floor keeps conv5_x's 11 x 11 tiles in one block)


def _layout(m, rows, cols, c, mo, threads, itemsize=4):
    """(tiles per row tw, tile rows per block tr, blocks) for an output region rows x cols. Blocks go to the
    threads whole when there are enough of them; else each block's steps are shared out (see _Steps)."""
    tw, th = -(-cols // m), -(-rows // m)
    tiles = max(MIN_TILES, BLOCK_BYTES // ((m + 2) ** 2 * max(c, mo) * itemsize))
    tr = max(1, min(th, tiles // tw))
    if -(-th // tr) < 2 * threads and tr * tw > 2 * threads * MIN_TILES:
        tr = max(1, -(-th // (2 * threads)), -(-MIN_TILES // tw))      # enough blocks, each wide enough
    return tw, tr, -(-th // tr)


def _gather(grid, d, m, tr, tw):
    """D (alpha, alpha, C', tr, tw) <- the tiles of grid (C', m*tr + 2, >= m*tw + 2), one strided copy."""
    alpha = m + 2
    s = grid.strides
    view = numpy.lib.stride_tricks.as_strided(grid, (alpha, alpha, grid.shape[0], tr, tw),
                                              (s[1], s[2], s[0], m * s[1], m * s[2]))
    d[...] = view


def _ranges(count, parts):
    step = -(-count // max(1, parts))
    return [(i, min(count, i + step)) for i in range(0, count, step)]


class _Steps:
    """One block of tr x tw tiles (T of them), computed in steps that each split into independent chunks:
    by channel (input transform), by transform component k (the alpha^2 GEMMs), by output channel (output
    transform). Buffers a and b hold alpha^2 x max(C, M) x T values each."""

    def __init__(self, m, c, mo, tr, tw, dtype):
        self.m, self.c, self.mo, self.tr, self.tw, self.t = m, c, mo, tr, tw, tr * tw
        self.alpha2 = (m + 2) ** 2
        self.size = numpy.dtype(dtype).itemsize
        self.ka, self.kb = kron_matrices(m, dtype)
        self.rows = _Rows(c, m * tr + 2, m * tw + 2, 0, dtype)
        self.a = numpy.empty(self.alpha2 * max(c, mo) * self.t, dtype=dtype)
        self.b = numpy.empty_like(self.a)

    def d(self):
        return self.a[:self.alpha2 * self.c * self.t].reshape(self.m + 2, self.m + 2, self.c, self.tr, self.tw)

    def v(self):
        return self.b[:self.alpha2 * self.c * self.t]

    def transform_input(self, gemm, c0, c1):
        """V[:, c0:c1] = KB D[:, c0:c1] (the rows, filled, hold the block's input)."""
        _gather(self.rows.grid[c0:c1], self.d()[:, :, c0:c1], self.m, self.tr, self.tw)
        ct, t = self.c * self.t, self.t
        gemm(self.alpha2, (c1 - c0) * t, self.alpha2, _address(self.kb), self.alpha2, _address(self.a) +
             c0 * t * self.size, ct, _address(self.b) + c0 * t * self.size, ct)

    def products(self, gemm, u, k0, k1):
        """P_k = U_k V_k (M x T) into buffer a, for k in k0..k1-1."""
        mo, c, t, size = self.mo, self.c, self.t, self.size
        u_at, v_at, p_at = _address(u), _address(self.b), _address(self.a)
        for k in range(k0, k1):
            gemm(mo, t, c, u_at + k * mo * c * size, c, v_at + k * c * t * size, t, p_at + k * mo * t * size, t)

    def transform_output(self, gemm, out, bias3, r0, n, ox0, cols, m0, m1):
        """Output channels m0..m1-1 of the block: Y = KA P into buffer b, then into out[m0:m1, r0:r0+n]."""
        m, mo, t, tr, tw, size = self.m, self.mo, self.t, self.tr, self.tw, self.size
        y = self.b[:m * m * mo * t]
        gemm(m * m, (m1 - m0) * t, self.alpha2, _address(self.ka), self.alpha2, _address(self.a) + m0 * t * size,
             mo * t, _address(y) + m0 * t * size, mo * t)
        img = y.reshape(m, m, mo, tr, tw)[:, :, m0:m1].transpose(2, 3, 0, 4, 1).reshape(m1 - m0, m * tr, m * tw)
        dst = out[m0:m1, r0:r0 + n, ox0:ox0 + cols]
        if bias3 is None:
            dst[...] = img[:, :n, :cols]
        else:
            numpy.add(img[:, :n, :cols], bias3[m0:m1], out=dst)


def forward(x, u, out, bias, pad, m):
    """3x3 stride-1 convolution of x (C, H, W) into out (M, OH, OW) by F(m x m, 3 x 3); u = transform_weights."""
    ph, pw = pad
    c, h, w = x.shape
    mo, oh, ow = out.shape
    oy0, oy1 = _touched(oh, h, 3, 1, ph, 1)
    ox0, ox1 = _touched(ow, w, 3, 1, pw, 1)
    if (oy0, oy1, ox0, ox1) != (0, oh, 0, ow):
        out[...] = 0 if bias is None else bias.reshape(-1, 1, 1)      # windows entirely in the padding
    if oy1 <= oy0 or ox1 <= ox0:
        return out
    cols = ox1 - ox0
    tw, tr, blocks = _layout(m, oy1 - oy0, cols, c, mo, _POOL.size, x.itemsize)
    bias3 = None if bias is None else bias.reshape(-1, 1, 1)
    gemms = _PerThread(lambda: _Gemm(x.dtype))

    def run(s, i, split):
        r0 = oy0 + i * m * tr
        n = min(m * tr, oy1 - r0)
        s.rows.fill(x, r0 - ph, m * tr + 2, ox0 - pw)
        split(lambda g, lo, hi: s.transform_input(g, lo, hi), c)
        split(lambda g, lo, hi: s.products(g, u, lo, hi), s.alpha2)
        split(lambda g, lo, hi: s.transform_output(g, out, bias3, r0, n, ox0, cols, lo, hi), mo)

    _schedule(run, blocks, lambda: _Steps(m, c, mo, tr, tw, x.dtype), gemms)
    return out


def _schedule(run, blocks, make, gemms):
    """run(steps, block, split) for every block: whole blocks to the threads when there are enough, else the
    blocks one after another with each step split (chunks of `count` things over the threads)."""
    if blocks >= 2 * _POOL.size:
        scratch = _PerThread(make)
        _POOL.map(lambda i: run(scratch.get(), i, lambda step, count: step(gemms.get(), 0, count)), blocks)
        return [scratch.values()]
    shared = make()

    def split(step, count):
        parts = _ranges(count, 2 * _POOL.size)
        _POOL.map(lambda j: step(gemms.get(), *parts[j]), len(parts))

    for i in range(blocks):
        run(shared, i, split)
    return [[shared]]


def data_grad(dy, w, dx, pad, m):
    """dx (C, H, W) = the input gradient of the 3x3 stride-1 convolution with w (M, C, 3, 3) at `pad`
    (pad <= 2): the convolution of dy with the flipped, channel-transposed kernel at pad 2 - pad."""
    u = transform_weights(numpy.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), m)
    return forward(dy, u, dx, None, (2 - pad[0], 2 - pad[1]), m)


class _GradSteps(_Steps):
    """_Steps for the weight gradient: the output gradient's tiles, dP = KA^T dY, dU_k += dP_k V_k^T."""

    def __init__(self, m, c, mo, tr, tw, dtype):
        super().__init__(m, c, mo, tr, tw, dtype)
        self.kat = numpy.ascontiguousarray(self.ka.T)
        self.dy = numpy.zeros((mo, m * tr, m * tw), dtype=dtype)     # 0 past the edge: adds nothing
        self.dyt = numpy.empty(m * m * mo * self.t, dtype=dtype)
        self.du = numpy.zeros((self.alpha2, mo, c), dtype=dtype)

    def transform_grad(self, gemm, dy, r0, n, ox0, cols, m0, m1):
        """dP[:, m0:m1] = KA^T dY[:, m0:m1] into buffer a (dP_k is M x T, as P_k)."""
        m, mo, t, tr, tw, size = self.m, self.mo, self.t, self.tr, self.tw, self.size
        if n < m * tr:
            self.dy[m0:m1, n:] = 0
        self.dy[m0:m1, :n, :cols] = dy[m0:m1, r0:r0 + n, ox0:ox0 + cols]
        dyt = self.dyt.reshape(m, m, mo, tr, tw)
        dyt[:, :, m0:m1] = self.dy[m0:m1].reshape(m1 - m0, tr, m, tw, m).transpose(2, 4, 0, 1, 3)
        gemm(self.alpha2, (m1 - m0) * t, m * m, _address(self.kat), m * m, _address(self.dyt) + m0 * t * size,
             mo * t, _address(self.a) + m0 * t * size, mo * t)

    def accumulate(self, gemm, k0, k1):
        """dU_k += dP_k V_k^T (M x C) for k in k0..k1-1."""
        mo, c, t, size = self.mo, self.c, self.t, self.size
        dp_at, v_at, du_at = _address(self.a), _address(self.b), _address(self.du)
        for k in range(k0, k1):
            gemm(mo, c, t, dp_at + k * mo * t * size, t, v_at + k * c * t * size, t, du_at + k * mo * c * size, c,
                 beta=True, trans_b=True)


def weight_grad(x, dy, dw, pad, m):
    """dw (M, C, 3, 3) += the weight gradient of the 3x3 stride-1 convolution x (C, H, W) -> dy (M, OH, OW)."""
    ph, pw = pad
    c, h, w = x.shape
    mo, oh, ow = dy.shape
    oy0, oy1 = _touched(oh, h, 3, 1, ph, 1)              # the other outputs see only zeros: no weight gradient
    ox0, ox1 = _touched(ow, w, 3, 1, pw, 1)
    if oy1 <= oy0 or ox1 <= ox0:
        return dw
    cols = ox1 - ox0
    tw, tr, blocks = _layout(m, oy1 - oy0, cols, c, mo, _POOL.size, x.itemsize)
    gemms = _PerThread(lambda: _Gemm(x.dtype))

    def run(s, i, split):
        r0 = oy0 + i * m * tr
        n = min(m * tr, oy1 - r0)
        s.rows.fill(x, r0 - ph, m * tr + 2, ox0 - pw)
        split(lambda g, lo, hi: s.transform_input(g, lo, hi), c)
        split(lambda g, lo, hi: s.transform_grad(g, dy, r0, n, ox0, cols, lo, hi), mo)
        split(lambda g, lo, hi: s.accumulate(g, lo, hi), s.alpha2)

    (steps,) = _schedule(run, blocks, lambda: _GradSteps(m, c, mo, tr, tw, x.dtype), gemms)
    for s in steps:
        add_weight_grad(s.du, dw, m)
    return dw
