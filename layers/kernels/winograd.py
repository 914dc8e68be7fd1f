"""CPU strategy "winograd": Winograd convolution (Lavin & Gray) for 3x3 stride-1 undilated convolutions.

Forward: F(2x2, 3x3). Each 4x4 input tile and each kernel are transformed, 16 GEMMs over the tiles take the place
of 9 over the pixels (2.25x fewer multiplications), and 2x2 outputs per tile come back by the inverse transform.
The transforms are additions and halvings: the result stays within a few float32 ulps of the direct sum, inside
the golden forward tolerance (tests/layers/kernels/test_conv_strategies.py, test_winograd_tiles.py).

Gradients: F(4x4, 3x3) (layers/kernels/winograd_tiles.py, transforms as Kronecker GEMMs): 36 GEMMs per 4x4
outputs, 4x fewer multiplications than the direct sum. Its float32 error is about 10x F(2x2)'s: within the golden
gradient tolerance (rtol 1e-4), measured at a margin of 2 or more, but not within the forward one, so the
forward keeps F(2x2). The input gradient is the convolution of dy with the flipped, transposed kernel and pad
2 - pad; the weight gradient runs the algorithm backwards (dU = sum over tiles of dP V^T, dW = G^T dU G).

Supports: 3x3, stride 1, dilation 1; all three operations.
Applies (is worth it): forward: from 128 -> 128 channels on maps of 40x40 up (uses_winograd); gradients: from 64
channels in and out on maps of 20x20 up (uses_winograd_grads): all of VGG's 3x3 layers but conv1_1."""
import numpy

from layers.kernels import blas, winograd_tiles
from layers.kernels.blas import Gemm, address
from layers.kernels.geometry import touched
from layers.kernels.taps import Rows
from layers.kernels.threads import POOL, PerThread


GRADIENT_TILE = 4              # the gradients' F(m x m, 3 x 3)


def supports(op, geom, x, w, y):
    return (geom.kernel == (3, 3) and geom.stride == (1, 1) and geom.dilation == (1, 1)
            and blas.handles(x, w, y))


def applies(op, geom, x, w, y):
    if not supports(op, geom, x, w, y):
        return False
    cg, mg = w.shape[1], w.shape[0] // geom.group
    if op == "forward":
        return uses_winograd(geom.kernel, geom.stride, geom.dilation, cg, mg, *y.shape[2:])
    return uses_winograd_grads(cg, mg, *y.shape[2:])


def forward(x, w, b, out, geom):
    """One group: out = x * w + b."""
    u = winograd_tiles.transform_weights(w, 2)          # F(2x2)'s G w G^T, in the order winograd_conv reads
    for i in range(x.shape[0]):
        winograd_conv(x[i], u, out[i], b, geom.pad)


def data_grad(dy, w, dx, geom):
    """One group: dx = the convolution of dy with the flipped, transposed kernel, by F(4x4, 3x3)."""
    m = GRADIENT_TILE
    u = winograd_tiles.transform_weights(numpy.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), m)
    for i in range(dy.shape[0]):
        winograd_tiles.forward(dy[i], u, dx[i], None, geom.flipped_pad, m)


def weight_grad(x, dy, dw, geom):
    """One group: dw += the weight gradient, by F(4x4, 3x3) run backwards."""
    acc = dw if dw.flags.c_contiguous else numpy.zeros(dw.shape, dtype=dw.dtype)
    for i in range(x.shape[0]):
        winograd_tiles.weight_grad(x[i], dy[i], acc, geom.pad, GRADIENT_TILE)
    if acc is not dw:
        dw += acc


_WINOGRAD_TILES = 1 << 18      # tiles x (C + M) per block: ~17 MB of scratch per thread
_BT = ((0, 2, numpy.subtract), (1, 2, numpy.add), (2, 1, numpy.subtract), (1, 3, numpy.subtract))  # B^T rows


def uses_winograd(kernel, stride, dilation, c_in, m_out, out_h, out_w):
    # the transforms cost passes over the tiles that only many channels pay back. Measured (CPU time, FCN's
    # layers at 500x500 and 256x256): a gain from 128 -> 128 channels up on maps from 40x40 (0.9x at conv2_2,
    # 0.75x at conv4_x and conv5_x), none at 64 -> 64 (1.15x at conv1_2) or on 29x29 maps (1.04x at 512 -> 512)
    return (kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1) and c_in + m_out >= 256 and
            out_h * out_w >= 1600)


def uses_winograd_grads(c_in, m_out, out_h, out_w):
    # F(4x4)'s Kronecker transforms cost a few passes over the tiles; measured (CPU time) on FCN's layers, the
    # gradients gain on every 3x3 layer from conv1_2 (64 -> 64 on 698x698: 0.93-1.0x) to 512 -> 512 on 22x22
    # (0.7x), conv3_x and conv4_x by about 2x; at 15x15 they break even
    return min(c_in, m_out) >= 64 and out_h * out_w >= 400


def winograd_conv(x, u, out, bias, pad):
    """3x3 stride-1 convolution of x (C, H, W) into out (M, OH, OW), u = winograd_tiles.transform_weights(w, 2)."""
    ph, pw = pad
    c, h, w = x.shape
    m, oh, ow = out.shape
    oy0, oy1 = touched(oh, h, 3, 1, ph, 1)
    ox0, ox1 = touched(ow, w, 3, 1, pw, 1)
    if (oy0, oy1, ox0, ox1) != (0, oh, 0, ow):
        out[...] = 0 if bias is None else bias.reshape(-1, 1, 1)
    if oy1 <= oy0 or ox1 <= ox0:
        return
    cols = ox1 - ox0
    tw = -(-cols // 2)                                   # tiles per row; a block is tr rows of tiles
    tiles = max(tw, _WINOGRAD_TILES // (c + m))         # the transformed tiles of a block stay near the cache
    tr = max(1, min(-(-(oy1 - oy0) // 2), tiles // tw, -(-(oy1 - oy0) // (4 * POOL.size))))
    t = tr * tw
    size = x.itemsize
    scratch = PerThread(lambda: (
        Rows(c, 2 * tr + 2, 2 * tw + 2, 0, x.dtype), numpy.empty((c, tr, 2 * tw + 2), dtype=x.dtype),
        numpy.empty((16, c, t), dtype=x.dtype), numpy.empty((16, m, t), dtype=x.dtype),
        numpy.empty((4, m, tr, tw), dtype=x.dtype), numpy.empty((m, 2 * tr, 2 * tw), dtype=x.dtype), Gemm(x.dtype)))
    u_at = address(u)
    bias3 = None if bias is None else bias.reshape(-1, 1, 1)
    add, sub = numpy.add, numpy.subtract

    def block(i):
        rows, half, v, prod, s, y, gemm_ = scratch.get()
        r0 = oy0 + i * 2 * tr
        n = min(2 * tr, oy1 - r0)
        rows.fill(x, r0 - ph, 2 * tr + 2, ox0 - pw)
        d = rows.grid
        v4 = v.reshape(4, 4, c, tr, tw)
        for a, (p, q, op) in enumerate(_BT):             # B^T d on whole rows, then (B^T d) B on columns
            op(d[:, p:p + 2 * tr:2], d[:, q:q + 2 * tr:2], out=half)
            for b, (p2, q2, op2) in enumerate(_BT):
                op2(half[:, :, p2:p2 + 2 * tw:2], half[:, :, q2:q2 + 2 * tw:2], out=v4[a, b])
        v_at, p_at = address(v), address(prod)
        for k in range(16):
            gemm_(m, t, c, u_at + k * m * c * size, c, v_at + k * c * t * size, t, p_at + k * m * t * size, t)
        p4 = prod.reshape(4, 4, m, tr, tw)
        for a in range(2):                               # A^T p A, A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
            for j in range(4):
                if a == 0:
                    add(p4[0, j], p4[1, j], out=s[j])
                    add(s[j], p4[2, j], out=s[j])
                else:
                    sub(p4[1, j], p4[2, j], out=s[j])
                    sub(s[j], p4[3, j], out=s[j])
            y0, y1 = y[:, a::2, 0::2], y[:, a::2, 1::2]
            add(s[0], s[1], out=y0)
            add(y0, s[2], out=y0)
            sub(s[1], s[2], out=y1)
            sub(y1, s[3], out=y1)
        dst = out[:, r0:r0 + n, ox0:ox1]
        if bias3 is None:
            dst[...] = y[:, :n, :cols]
        else:
            add(y[:, :n, :cols], bias3, out=dst)

    POOL.map(block, -(-(oy1 - oy0) // (2 * tr)))
