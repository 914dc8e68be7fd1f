"""MAX pooling on the GPU with its argmax, forward and backward (cf. caffe pooling_layer.cu, chainer's
max_pooling_2d): one ElementwiseKernel each, in Caffe's geometry (windows clipped to the image, padding never
wins, the first maximum in row-major window order wins).

The numpy twin, and test oracle, is PoolingLayer's tap loop (layers/pooling.py), which on the GPU would launch
three kernels per tap. The argmax is the winner's tap index ky * kw + kx inside its window, as the twin keeps it
(int32 here), so the mask top and the backward read it alike. The backward gathers: each bottom cell sums the
top diffs of the windows it won, in the twin's order (taps ascending, i.e. windows descending), without atomics.
"""
from layers import backend

_GEOMETRY = ("int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, int32 sy, int32 sx, int32 ph, "
             "int32 pw")

_max_pool_fwd = backend.ElementwiseKernel(
    "raw T x, " + _GEOMETRY,
    "T y, int32 argmax",
    """
    int c0 = i / (out_h * out_w);
    int out_y = i / out_w % out_h;
    int out_x = i % out_w;
    int y0 = out_y * sy - ph;
    int x0 = out_x * sx - pw;
    int y_start = max(y0, 0), y_end = min(y0 + kh, h);
    int x_start = max(x0, 0), x_end = min(x0 + kw, w);
    int plane = c0 * h * w;
    T best = x[plane + y_start * w + x_start];
    int arg = (y_start - y0) * kw + (x_start - x0);
    for (int yy = y_start; yy < y_end; ++yy) {
      for (int xx = x_start; xx < x_end; ++xx) {
        T v = x[plane + yy * w + xx];
        if (v > best) {
          best = v;
          arg = (yy - y0) * kw + (xx - x0);
        }
      }
    }
    y = best;
    argmax = arg;
    """,
    "fcn_max_pool_fwd")

_max_pool_bwd = backend.ElementwiseKernel(
    "raw T dy, raw int32 argmax, " + _GEOMETRY,
    "T dx",
    """
    int c0 = i / (h * w);
    int yy = i / w % h + ph;
    int xx = i % w + pw;
    int oy_start = yy < kh ? 0 : (yy - kh) / sy + 1;
    int oy_end = min(yy / sy + 1, out_h);
    int ox_start = xx < kw ? 0 : (xx - kw) / sx + 1;
    int ox_end = min(xx / sx + 1, out_w);
    int plane = c0 * out_h * out_w;
    T acc = 0;
    for (int out_y = oy_end - 1; out_y >= oy_start; --out_y) {
      for (int out_x = ox_end - 1; out_x >= ox_start; --out_x) {
        int k = plane + out_y * out_w + out_x;
        if (argmax[k] == (yy - out_y * sy) * kw + (xx - out_x * sx)) {
          acc += dy[k];
        }
      }
    }
    dx = acc;
    """,
    "fcn_max_pool_bwd")


def max_pool_forward_gpu(x, y, argmax, kernel, stride, pad):
    """y (N, C, OH, OW) = the window maxima of x (N, C, H, W); argmax (int32, y's shape) = the winning taps."""
    xp = backend.get_array_module(x)
    h, w = x.shape[2:]
    oh, ow = y.shape[2:]
    _max_pool_fwd(xp.ascontiguousarray(x), h, w, oh, ow, *kernel, *stride, *pad, y, argmax)


def max_pool_backward_gpu(dy, argmax, dx, kernel, stride, pad):
    """dx (N, C, H, W) = each top diff routed to its window's winner; every cell of dx is written."""
    xp = backend.get_array_module(dy)
    h, w = dx.shape[2:]
    oh, ow = dy.shape[2:]
    _max_pool_bwd(xp.ascontiguousarray(dy), xp.ascontiguousarray(argmax), h, w, oh, ow, *kernel, *stride, *pad,
                  dx)
