"""Winograd F(2x2, 3x3) convolution on the GPU (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"):
the GPU strategy (layers/kernels/conv.py) for 3x3, stride-1, undilated, ungrouped layers with many channels
(VGG's and FCN's).

Each 4x4 input tile d (stride 2, overlapping by 2) and each 3x3 kernel g are transformed, V = B^T d B and
U = G g G^T; the 16 products U_k V_k are 16 batched GEMMs (M x C times C x tiles, cuBLAS), and each tile's 2x2
outputs come back as A^T P A. That is 16 multiplications for 4 outputs where the direct sum takes 36: 2.25x less
arithmetic, which is what the GPU is short of (cuDNN does the same for float32). The transforms are additions
and halvings, so the result stays within a few float32 ulps of the direct sum.

The backward is the exact gradient of these steps: dP = A dY A^T per output tile, then dU = dP V^T and
dV = U^T dP (32 more batched GEMMs), dg = G^T dU G, and dd = B dV B^T scattered back over the overlapping tiles
(each input cell gathers the at most 2 x 2 tiles that read it, so no atomics and a fixed order).

Layout: tiles t = (n, ty, tx) row-major; transformed arrays are (16, channels, tiles), plane k = 4 * row + column
of the 4x4 transform. The kernels are ElementwiseKernels over one thread per (channel, tile) or per input cell;
their numpy twins, and test oracles, are the *_twin functions below (tests/layers/test_gpu_kernels.py).
"""
import numpy

from layers import backend

MIN_CHANNELS = 32           # under this the GEMMs are too thin to pay for the transforms' passes over memory
INDEX_LIMIT = 2 ** 31       # the kernels' 32-bit tile and channel indices

_G = numpy.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])     # kernel transform, 4 x 3


ALL_GROUPS = True         # one group only (fits() says so), handed the whole arrays


def supports(op, geom, x, w, y):
    """CuPy arrays of a 3x3, stride-1, undilated, ungrouped convolution within the kernels' 32-bit indices."""
    return (backend.is_gpu(x) and fits(geom.kernel, geom.stride, geom.dilation, geom.group, x.shape[1], y.shape[1],
                                       x.shape, y.shape, min_channels=1))


def applies(op, geom, x, w, y):
    """supports(), with many channels (MIN_CHANNELS)."""
    return supports(op, geom, x, w, y) and min(x.shape[1], y.shape[1]) >= MIN_CHANNELS


def forward(x, w, b, out, geom):
    run_forward(x, w, b, out, geom.pad)


def data_grad(dy, w, dx, geom):
    backward(dx, w, dy, geom.pad, dx=dx)          # dx stands in for x: only its shape is read


def weight_grad(x, dy, dw, geom):
    backward(x, None, dy, geom.pad, dweight=dw)   # the weight gradient does not read the weight


def fits(kernel, stride, dilation, group, channels, num_output, bottom_shape, top_shape, min_channels=MIN_CHANNELS):
    """Whether the fast path takes this layer: 3x3, stride 1, undilated, one group, many channels, and every
    transformed array within the kernels' 32-bit indices."""
    if not (kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1) and group == 1
            and min(channels, num_output) >= min_channels):
        return False
    n, _, oh, ow = top_shape
    tiles = n * -(-oh // 2) * -(-ow // 2)
    return 16 * max(channels, num_output) * tiles < INDEX_LIMIT and numpy.prod(bottom_shape) < INDEX_LIMIT


def _tiles(top_shape):
    n, _, oh, ow = top_shape
    th, tw = -(-oh // 2), -(-ow // 2)
    return th, tw, n * th * tw


# ---------------------------------------------------------------------------------------------- the kernels
_TILE_INDEX = """
    int n = t / (tiles_h * tiles_w);
    int ty = t / tiles_w % tiles_h;
    int tx = t % tiles_w;
    ptrdiff_t plane = (ptrdiff_t)count * tiles;
    ptrdiff_t at = (ptrdiff_t)c * tiles + t;
"""

# V = B^T d B, B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]; one thread per (channel, tile)
_input_transform = backend.ElementwiseKernel(
    "raw T x, int32 count, int32 h, int32 w, int32 tiles_h, int32 tiles_w, int32 tiles, int32 ph, int32 pw",
    "raw T v",
    """
    int c = i / tiles;
    int t = i % tiles;
    """ + _TILE_INDEX + """
    ptrdiff_t base = ((ptrdiff_t)n * count + c) * h * w;
    int y0 = 2 * ty - ph, x0 = 2 * tx - pw;
    T d[4][4];
    for (int r = 0; r < 4; ++r) {
      for (int s = 0; s < 4; ++s) {
        int y = y0 + r, xx = x0 + s;
        d[r][s] = (y >= 0 && y < h && xx >= 0 && xx < w) ? x[base + (ptrdiff_t)y * w + xx] : (T)0;
      }
    }
    for (int s = 0; s < 4; ++s) {
      T d0 = d[0][s], d1 = d[1][s], d2 = d[2][s], d3 = d[3][s];
      d[0][s] = d0 - d2;
      d[1][s] = d1 + d2;
      d[2][s] = d2 - d1;
      d[3][s] = d1 - d3;
    }
    for (int r = 0; r < 4; ++r) {
      v[at + (4 * r + 0) * plane] = d[r][0] - d[r][2];
      v[at + (4 * r + 1) * plane] = d[r][1] + d[r][2];
      v[at + (4 * r + 2) * plane] = d[r][2] - d[r][1];
      v[at + (4 * r + 3) * plane] = d[r][1] - d[r][3];
    }
    """,
    "fcn_winograd_input")

# Y = A^T P A (+ bias), A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]; one thread per (output channel, tile)
_output_transform = backend.ElementwiseKernel(
    "raw T prod, raw T bias, bool has_bias, int32 count, int32 oh, int32 ow, int32 tiles_h, int32 tiles_w, "
    "int32 tiles",
    "raw T y",
    """
    int c = i / tiles;
    int t = i % tiles;
    """ + _TILE_INDEX + """
    T a0[4], a1[4];
    for (int s = 0; s < 4; ++s) {
      T p0 = prod[at + s * plane], p1 = prod[at + (4 + s) * plane];
      T p2 = prod[at + (8 + s) * plane], p3 = prod[at + (12 + s) * plane];
      a0[s] = p0 + p1 + p2;
      a1[s] = p1 - p2 - p3;
    }
    T b = has_bias ? bias[c] : (T)0;
    T out[2][2] = {{a0[0] + a0[1] + a0[2], a0[1] - a0[2] - a0[3]}, {a1[0] + a1[1] + a1[2], a1[1] - a1[2] - a1[3]}};
    for (int r = 0; r < 2; ++r) {
      int oy = 2 * ty + r;
      for (int s = 0; s < 2; ++s) {
        int ox = 2 * tx + s;
        if (oy < oh && ox < ow) {
          y[(((ptrdiff_t)n * count + c) * oh + oy) * ow + ox] = out[r][s] + b;
        }
      }
    }
    """,
    "fcn_winograd_output")

# dP = A dY A^T (the output transform's adjoint), outputs past the map's edge count as 0
_grad_output_transform = backend.ElementwiseKernel(
    "raw T dy, int32 count, int32 oh, int32 ow, int32 tiles_h, int32 tiles_w, int32 tiles",
    "raw T dp",
    """
    int c = i / tiles;
    int t = i % tiles;
    """ + _TILE_INDEX + """
    T g[2][2];
    for (int r = 0; r < 2; ++r) {
      for (int s = 0; s < 2; ++s) {
        int oy = 2 * ty + r, ox = 2 * tx + s;
        g[r][s] = (oy < oh && ox < ow) ? dy[(((ptrdiff_t)n * count + c) * oh + oy) * ow + ox] : (T)0;
      }
    }
    T e[4][2];
    for (int s = 0; s < 2; ++s) {
      e[0][s] = g[0][s];
      e[1][s] = g[0][s] + g[1][s];
      e[2][s] = g[0][s] - g[1][s];
      e[3][s] = -g[1][s];
    }
    for (int r = 0; r < 4; ++r) {
      dp[at + (4 * r + 0) * plane] = e[r][0];
      dp[at + (4 * r + 1) * plane] = e[r][0] + e[r][1];
      dp[at + (4 * r + 2) * plane] = e[r][0] - e[r][1];
      dp[at + (4 * r + 3) * plane] = -e[r][1];
    }
    """,
    "fcn_winograd_grad_output")

# dd = B dV B^T (the input transform's adjoint), in place: each thread reads and writes its own 16 values
_grad_input_transform = backend.ElementwiseKernel(
    "int32 count, int32 tiles",
    "raw T dv",
    """
    ptrdiff_t plane = (ptrdiff_t)count * tiles;
    ptrdiff_t at = i;
    T e[4][4];
    for (int s = 0; s < 4; ++s) {
      T v0 = dv[at + s * plane], v1 = dv[at + (4 + s) * plane];
      T v2 = dv[at + (8 + s) * plane], v3 = dv[at + (12 + s) * plane];
      e[0][s] = v0;
      e[1][s] = v1 - v2 + v3;
      e[2][s] = v1 + v2 - v0;
      e[3][s] = -v3;
    }
    for (int r = 0; r < 4; ++r) {
      dv[at + (4 * r + 0) * plane] = e[r][0];
      dv[at + (4 * r + 1) * plane] = e[r][1] - e[r][2] + e[r][3];
      dv[at + (4 * r + 2) * plane] = e[r][1] + e[r][2] - e[r][0];
      dv[at + (4 * r + 3) * plane] = -e[r][3];
    }
    """,
    "fcn_winograd_grad_input")

# dx: each input cell sums, in a fixed order, the at most 2 x 2 tiles whose 4x4 window holds it
_gather_input = backend.ElementwiseKernel(
    "raw T dd, int32 count, int32 h, int32 w, int32 tiles_h, int32 tiles_w, int32 tiles, int32 ph, int32 pw",
    "raw T dx",
    """
    int xx = i % w;
    int y = i / w % h;
    int c = i / ((ptrdiff_t)w * h) % count;
    int n = i / ((ptrdiff_t)w * h * count);
    int py = y + ph, px = xx + pw;
    ptrdiff_t plane = (ptrdiff_t)count * tiles;
    T acc = 0;
    for (int ty = max(py / 2 - 1, 0); ty <= min(py / 2, tiles_h - 1); ++ty) {
      for (int tx = max(px / 2 - 1, 0); tx <= min(px / 2, tiles_w - 1); ++tx) {
        int k = 4 * (py - 2 * ty) + (px - 2 * tx);
        acc += dd[k * plane + (ptrdiff_t)c * tiles + ((ptrdiff_t)n * tiles_h + ty) * tiles_w + tx];
      }
    }
    dx[i] = acc;
    """,
    "fcn_winograd_gather_input")


# ---------------------------------------------------------------------------------------------- the layer's calls
def transform_weights(weight):
    """U = G g G^T: (M, C, 3, 3) -> (16, M, C), on the weight's device."""
    xp = backend.get_array_module(weight)
    g = xp.asarray(_G, dtype=weight.dtype)
    m, c = weight.shape[:2]
    half = xp.tensordot(g, weight, axes=([1], [2]))                  # (4, M, C, 3): G g
    u = xp.tensordot(half, g, axes=([3], [1]))                       # (4, M, C, 4): G g G^T
    return xp.ascontiguousarray(u.transpose(0, 3, 1, 2)).reshape(16, m, c)


def weight_gradient(du, shape):
    """dg = G^T dU G: (16, M, C) -> (M, C, 3, 3)."""
    xp = backend.get_array_module(du)
    g = xp.asarray(_G, dtype=du.dtype)
    m, c = shape[:2]
    half = xp.tensordot(g, du.reshape(4, 4, m, c), axes=([0], [0]))  # (3, 4, M, C)
    return xp.tensordot(half, g, axes=([1], [0])).transpose(1, 2, 0, 3)   # (M, C, 3, 3)


def input_transform(x, pad, top_shape):
    """V (16, C, tiles) of x (N, C, H, W)."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    th, tw, tiles = _tiles(top_shape)
    v = xp.empty((16, c, tiles), dtype=x.dtype)
    _input_transform(xp.ascontiguousarray(x), c, h, w, th, tw, tiles, pad[0], pad[1], v, size=c * tiles)
    return v


def run_forward(x, weight, bias, y, pad):
    """y (N, M, OH, OW) = the 3x3 stride-1 convolution of x with weight (+ bias), written whole."""
    xp = backend.get_array_module(x)
    th, tw, tiles = _tiles(y.shape)
    m = y.shape[1]
    prod = xp.matmul(transform_weights(weight), input_transform(x, pad, y.shape))     # (16, M, tiles)
    _output_transform(prod, prod if bias is None else bias, bias is not None, m, y.shape[2], y.shape[3], th, tw,
                      tiles, y, size=m * tiles)


def backward(x, weight, dy, pad, dx=None, dweight=None):
    """Adds the weight gradient to dweight and writes the input gradient into dx, where given."""
    xp = backend.get_array_module(dy)
    n, m, oh, ow = dy.shape
    th, tw, tiles = _tiles(dy.shape)
    dp = xp.empty((16, m, tiles), dtype=dy.dtype)
    _grad_output_transform(xp.ascontiguousarray(dy), m, oh, ow, th, tw, tiles, dp, size=m * tiles)
    if dweight is not None:
        du = xp.matmul(dp, input_transform(x, pad, dy.shape).transpose(0, 2, 1))     # (16, M, C)
        dweight += weight_gradient(du, dweight.shape)
    if dx is not None:
        c, h, w = x.shape[1:]
        dv = xp.matmul(transform_weights(weight).transpose(0, 2, 1), dp)             # (16, C, tiles)
        _grad_input_transform(c, tiles, dv, size=c * tiles)
        _gather_input(dv, c, h, w, th, tw, tiles, pad[0], pad[1], dx, size=dx.size)


# ---------------------------------------------------------------------------------------------- numpy twins
def _tile_view(a, th, tw, size):
    """(N, C, 2*th + size - 2, 2*tw + size - 2) -> (N, C, th, tw, size, size), the overlapping tiles (a view)."""
    n, c = a.shape[:2]
    s = a.strides
    return numpy.lib.stride_tricks.as_strided(a, (n, c, th, tw, size, size),
                                              (s[0], s[1], 2 * s[2], 2 * s[3], s[2], s[3]))


def _planes(tiles6):
    """(N, C, th, tw, 4, 4) -> (16, C, N * th * tw)."""
    n, c, th, tw = tiles6.shape[:4]
    return numpy.ascontiguousarray(tiles6.transpose(4, 5, 1, 0, 2, 3)).reshape(16, c, n * th * tw)


def _rows(d, bt):
    """Apply a 4 x 4 transform of +-1/0 entries along axis -2 in the kernels' order."""
    return numpy.stack([sum(coef * d[..., k, :] for k, coef in row) for row in bt], axis=-2)


_BT = [[(0, 1), (2, -1)], [(1, 1), (2, 1)], [(2, 1), (1, -1)], [(1, 1), (3, -1)]]          # B^T, as in the kernel


def input_transform_twin(x, pad, top_shape):
    n, c, h, w = x.shape
    th, tw, _ = _tiles(top_shape)
    padded = numpy.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    ph, pw = pad
    ys, xs = slice(max(ph, 0), min(ph + h, 2 * th + 2)), slice(max(pw, 0), min(pw + w, 2 * tw + 2))
    padded[:, :, ys, xs] = x[:, :, ys.start - ph:ys.stop - ph, xs.start - pw:xs.stop - pw]
    d = _tile_view(padded, th, tw, 4)
    d = _rows(d, _BT)                                          # B^T d
    d = _rows(d.swapaxes(-1, -2), _BT).swapaxes(-1, -2)        # (B^T d) B
    return _planes(d)


def output_transform_twin(prod, bias, top_shape):
    n, m, oh, ow = top_shape
    th, tw, _ = _tiles(top_shape)
    p = prod.reshape(4, 4, m, n, th, tw).transpose(3, 2, 4, 5, 0, 1)      # (N, M, th, tw, 4, 4)
    at = [[(0, 1), (1, 1), (2, 1)], [(1, 1), (2, -1), (3, -1)]]
    a = _rows(p, at)                                                     # (..., 2, 4)
    y = _rows(a.swapaxes(-1, -2), at).swapaxes(-1, -2)                  # (..., 2, 2)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1, 1, 1)
    return y.transpose(0, 1, 2, 4, 3, 5).reshape(n, m, 2 * th, 2 * tw)[:, :, :oh, :ow]


def grad_output_transform_twin(dy, top_shape):
    n, m, oh, ow = top_shape
    th, tw, _ = _tiles(top_shape)
    g = numpy.zeros((n, m, 2 * th, 2 * tw), dtype=dy.dtype)
    g[:, :, :oh, :ow] = dy
    g = g.reshape(n, m, th, 2, tw, 2).transpose(0, 1, 2, 4, 3, 5)        # (N, M, th, tw, 2, 2)
    a = [[(0, 1)], [(0, 1), (1, 1)], [(0, 1), (1, -1)], [(1, -1)]]       # A, 4 x 2
    e = _rows(g, a)
    return _planes(_rows(e.swapaxes(-1, -2), a).swapaxes(-1, -2))


def grad_input_twin(dv, x_shape, pad, top_shape):
    """B dV B^T per tile, gathered into (N, C, H, W)."""
    n, c, h, w = x_shape
    th, tw, _ = _tiles(top_shape)
    b = [[(0, 1)], [(1, 1), (2, -1), (3, 1)], [(1, 1), (2, 1), (0, -1)], [(3, -1)]]     # B = (B^T)^T
    v = dv.reshape(4, 4, c, n, th, tw).transpose(3, 2, 4, 5, 0, 1)       # (N, C, th, tw, 4, 4)
    e = _rows(v, b)
    dd = _rows(e.swapaxes(-1, -2), b).swapaxes(-1, -2)
    padded = numpy.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=dv.dtype)
    for ty in range(2):                  # the tiles' windows overlap by 2: add them in four interleaved passes
        for tx in range(2):
            for r in range(4):
                for s in range(4):
                    padded[:, :, 2 * ty + r:2 * th + r:4, 2 * tx + s:2 * tw + s:4] += dd[:, :, ty::2, tx::2, r, s]
    ph, pw = pad
    return padded[:, :, ph:ph + h, pw:pw + w]
