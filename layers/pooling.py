"""Pooling layer ("Pooling"): MAX and AVE with Caffe's geometry. Semantics: caffe pooling_layer.cpp.

Output size rounds up (ceil), and a last window that would start inside the padding is dropped.
MAX: the first maximum in row-major window order wins and gets the whole gradient; padding never wins.
AVE: divides by the window clipped to the padded input (not to the image), so border windows count padding.
Computed as a loop over the kernel taps, each a strided view of the whole bottom (no padded copy, no Python loop
over pixels); on the CPU slabs of channels go to the convolution kernels' threads. MAX keeps the winning tap (1
byte per output for 2x2) only where a backward pass can follow or a mask top asks for it.
"""
import numpy

from layers import backend
from layers.base import Layer
from layers.kernels.geometry import pool_outsize, pool_pairs, tap_range
from layers.kernels.threads import parallel_map
from layers.registry import register
from netspec import caffe_pb2

MAX, AVE, STOCHASTIC = (caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE,
                        caffe_pb2.PoolingParameter.STOCHASTIC)


def _serial(fn, count):
    """The generic path's stand-in for parallel_map: the slabs one after another."""
    for i in range(count):
        fn(i)


@register("Pooling")
class PoolingLayer(Layer):
    exact_num_bottom = 1
    min_num_top = 1
    max_num_top = 2          # MAX may output its argmax mask as a second top

    def setup(self, bottom, top):
        p = self.param.pooling_param
        if bottom[0].ndim != 4:
            raise self.error(f"needs an N x C x H x W bottom, got shape {bottom[0].shape}")
        self.method = p.pool
        if self.method == STOCHASTIC:
            raise self.error("STOCHASTIC pooling is not supported; use MAX or AVE")
        if len(top) == 2 and self.method != MAX:
            raise self.error("only MAX pooling has a second (mask) top")
        self.global_pooling = p.global_pooling
        if self.global_pooling and (p.kernel_size or p.HasField("kernel_h")):
            raise self.error("with global_pooling the kernel size is the input size; do not set it")
        kernel, self.stride, self.pad = pool_pairs(self.error, p)
        if kernel is not None:
            self.kernel = kernel
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("global pooling takes no pad and stride 1")
        self.ceil_mode = p.round_mode == caffe_pb2.PoolingParameter.CEIL
        if min(self.stride) <= 0 or (not self.global_pooling and min(self.kernel) <= 0):
            raise self.error(f"kernel {'(global)' if self.global_pooling else self.kernel} and stride {self.stride} "
                             f"must be positive")
        if not self.global_pooling:
            if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
                raise self.error(f"pad {self.pad} must be smaller than the kernel {self.kernel}")

    def reshape(self, bottom, top):
        n, c, h, w = bottom[0].shape
        if self.global_pooling:
            self.kernel = (h, w)
        kh, kw = self.kernel
        (sh, sw), (ph, pw) = self.stride, self.pad
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise self.error(f"the kernel {self.kernel} is larger than the padded input {h + 2 * ph}x{w + 2 * pw} "
                             f"(bottom {bottom[0].shape}, pad {self.pad})")
        self.out = (pool_outsize(h, kh, sh, ph, self.ceil_mode), pool_outsize(w, kw, sw, pw, self.ceil_mode))
        for t in top:
            t.reshape(n, c, *self.out)

    def _taps(self, h, w):
        """Per kernel tap (in Caffe's row-major window order): (tap, input view slices, output view slices),
        clipped to the windows that meet the image; padding is never read, so it never wins and adds nothing."""
        (kh, kw), (sh, sw), (ph, pw), (oh, ow) = self.kernel, self.stride, self.pad, self.out
        for t in range(kh * kw):
            ky, kx = divmod(t, kw)
            y0, y1, iy = tap_range(ky - ph, sh, oh, h)
            x0, x1, ix = tap_range(kx - pw, sw, ow, w)
            if y1 > y0 and x1 > x0:
                src = (Ellipsis, slice(iy, iy + (y1 - y0 - 1) * sh + 1, sh), slice(ix, ix + (x1 - x0 - 1) * sw + 1, sw))
                yield t, src, (Ellipsis, slice(y0, y1), slice(x0, x1))

    def _pool_sizes(self, h, w, dtype):
        """AVE's divisor per output cell: the window clipped to the padded input (Caffe's pool_size)."""
        (kh, kw), (sh, sw), (ph, pw), (oh, ow) = self.kernel, self.stride, self.pad, self.out
        ys = numpy.arange(oh) * sh - ph
        xs = numpy.arange(ow) * sw - pw
        hs = numpy.minimum(ys + kh, h + ph) - ys
        ws = numpy.minimum(xs + kw, w + pw) - xs
        return (hs[:, None] * ws[None, :]).astype(dtype)

    def forward(self, bottom, top):
        self._pool(bottom, top, _serial)

    def forward_fast(self, bottom, top):
        """MAX on the GPU: one kernel (below) instead of three per tap; on the CPU: slabs of channels on the
        kernel threads."""
        if backend.is_gpu(bottom[0].data):
            if self.method != MAX or self.global_pooling:
                return False
            xp = self.xp(bottom[0])
            self.argmax = xp.empty(top[0].shape, dtype=numpy.int32)
            self.argmax_from_kernel = True                 # flat indices, which only the kernel's backward reads
            max_pool_forward_gpu(bottom[0].data, top[0].data, self.argmax, self.kernel, self.stride, self.pad)
            if len(top) > 1:
                top[1].data[...] = self._flat_argmax(xp, *bottom[0].shape[2:])
            return True
        self._pool(bottom, top, parallel_map)
        return True

    def backward(self, top, propagate_down, bottom):
        self._pool_gradient(top, propagate_down, bottom, _serial)

    def backward_fast(self, top, propagate_down, bottom):
        if backend.is_gpu(top[0].data):
            if self.method != MAX or self.global_pooling or not self.argmax_from_kernel:
                return False
            if propagate_down[0]:
                max_pool_backward_gpu(top[0].diff, self.argmax, bottom[0].diff, self.kernel, self.stride, self.pad)
            return True
        self._pool_gradient(top, propagate_down, bottom, parallel_map)
        return True

    @staticmethod
    def _slabs(channels):
        """(slab count, channels per slab): a few independent pieces, split along the channels."""
        step = max(1, -(-channels // 8))
        return -(-channels // step), step

    def _pool(self, bottom, top, map_slabs):
        """The pooling, its slabs of channels run by map_slabs (one after another, or on the CPU threads)."""
        xp = self.xp(bottom[0])
        self.argmax_from_kernel = False
        x = bottom[0].data
        n, c, h, w = x.shape
        y = top[0].data
        if self.global_pooling:          # one window: a reduction (argmax returns the first maximum, as Caffe)
            flat = x.reshape(n, c, -1)
            if self.method == MAX:
                self.argmax = flat.argmax(axis=2).reshape(y.shape)
                y[...] = xp.take_along_axis(flat, self.argmax.reshape(n, c, 1), axis=2).reshape(y.shape)
                if len(top) > 1:
                    top[1].data[...] = self.argmax
            else:
                y[...] = flat.sum(axis=2).reshape(y.shape) / x.dtype.type(h * w)
            return
        taps = list(self._taps(h, w))
        if self.method == MAX:
            # the winning tap per output cell (Caffe keeps the flat bottom index; the tap is 1 byte for 2x2),
            # needed only when a backward pass can follow (not in a deploy net) or for the mask top
            keep = len(top) > 1 or self.need_backward
            count = self.kernel[0] * self.kernel[1]
            self.argmax = xp.zeros(y.shape, dtype=numpy.uint8 if count <= 256 else numpy.int32) if keep else None
            count, step = self._slabs(c)
            args = self.argmax if keep else y

            def slab(i):
                # a loop over the kernel taps, each a strided view of the bottom: no padded copy, no windows
                s = slice(i * step, (i + 1) * step)
                xi, yi, ai = x[:, s], y[:, s], args[:, s]
                if taps[0][2] != (Ellipsis, slice(0, yi.shape[2]), slice(0, yi.shape[3])):
                    yi[...] = -xp.inf                   # padding: the first tap misses some windows
                if keep:
                    better, winner = xp.empty(yi.shape, dtype=bool), xp.empty(yi.shape, dtype=ai.dtype)
                for t, src, dst in taps:
                    v, best = xi[src], yi[dst]
                    if t == 0:
                        best[...] = v
                        continue
                    if keep:
                        # strict >, in row-major window order, so the first maximum wins as in Caffe; a later
                        # tap has a larger index, so the winner is max(winner so far, t if strictly better)
                        xp.greater(v, best, out=better[dst])
                        xp.multiply(better[dst], ai.dtype.type(t), out=winner[dst])
                        xp.maximum(ai[dst], winner[dst], out=ai[dst])
                    xp.maximum(best, v, out=best)
            map_slabs(slab, count)
            if len(top) > 1:
                top[1].data[...] = self._flat_argmax(xp, h, w)
        else:
            count, step = self._slabs(c)
            sizes = xp.asarray(self._pool_sizes(h, w, x.dtype))

            def slab(i):
                s = slice(i * step, (i + 1) * step)
                xi, yi = x[:, s], y[:, s]
                yi[...] = 0
                for _, src, dst in taps:
                    yi[dst] += xi[src]
                yi /= sizes
            map_slabs(slab, count)

    def _flat_argmax(self, xp, h, w):
        """The winner's index into the unpadded H x W plane (Caffe's mask top)."""
        kw, (sh, sw), (ph, pw), (oh, ow) = self.kernel[1], self.stride, self.pad, self.out
        rows = xp.arange(oh).reshape(-1, 1) * sh - ph + self.argmax // kw
        cols = xp.arange(ow).reshape(1, -1) * sw - pw + self.argmax % kw
        return rows * w + cols

    def _pool_gradient(self, top, propagate_down, bottom, map_slabs):
        if not propagate_down[0]:
            return
        xp = self.xp(top[0])
        dy = top[0].diff
        h, w = bottom[0].shape[2:]
        dx = bottom[0].diff
        if self.global_pooling:
            flat = dx.reshape(dx.shape[0], dx.shape[1], -1)
            if self.method == MAX:
                flat[...] = 0
                xp.put_along_axis(flat, self.argmax.reshape(flat.shape[0], -1, 1), dy.reshape(flat.shape[0], -1, 1),
                                  axis=2)
            else:
                flat[...] = dy.reshape(flat.shape[0], -1, 1) / dy.dtype.type(h * w)
            return
        if self.method == MAX and self.argmax_from_kernel:
            raise self.error("the generic backward cannot read the GPU kernel's argmax; run the fast path")
        if self.method == MAX and self.argmax is None:
            raise self.error("backward after a forward that kept no argmax (the net needed no backward here)")
        taps = list(self._taps(h, w))
        if self.method == AVE:
            dy = dy / xp.asarray(self._pool_sizes(h, w, dy.dtype))
        count, step = self._slabs(dx.shape[1])
        # windows that do not overlap write each bottom cell once: assign instead of add
        disjoint = self.kernel[0] <= self.stride[0] and self.kernel[1] <= self.stride[1]

        def slab(i):
            s = slice(i * step, (i + 1) * step)
            dyi, dxi = dy[:, s], dx[:, s]
            dxi[...] = 0
            for t, src, dst in taps:
                if self.method == AVE:
                    g = dyi[dst]
                elif disjoint:
                    xp.multiply(dyi[dst], self.argmax[:, s][dst] == t, out=dxi[src])
                    continue
                else:
                    g = dyi[dst] * (self.argmax[:, s][dst] == t)
                if disjoint:
                    dxi[src] = g
                else:
                    dxi[src] += g
        map_slabs(slab, count)


# MAX pooling on the GPU with its argmax, forward and backward (cf. caffe pooling_layer.cu): one ElementwiseKernel
# each, in the geometry above. Their numpy twin, and test oracle, is the tap loop of _pool/_pool_gradient. The argmax
# is the winner's tap ky * kw + kx in its window, as the twin keeps it (int32 here), so the mask top and the
# backward read it alike. The backward gathers: each bottom cell sums the top diffs of the windows it won, in the
# twin's order (taps ascending, i.e. windows descending), without atomics.
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
