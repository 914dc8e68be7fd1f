"""Convolution geometry, im2col/col2im on the array module (cf. chainer/utils/conv.py), and the CPU kernels.

Columns are laid out (N, C, kh, kw, OH, OW) so that a convolution is one matrix product per group:
W (M, C*kh*kw) x col (C*kh*kw, OH*OW). That is the GPU's path (and any dtype's).

On the CPU, conv_forward_cpu, conv_data_grad_cpu and conv_weight_grad_cpu (used by Convolution and
Deconvolution) compute the same sums blockwise with few large BLAS calls; see the notes above _load_blas.
parallel_map shares numpy work out to the same threads (Pooling, ReLU).
"""
import ctypes
import ctypes.util
import glob
import itertools
import os
import queue
import threading

import numpy

from layers import backend


def conv_outsize(size, kernel, stride, pad, dilation=1):
    """Caffe's convolution output size (floor)."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


def deconv_outsize(size, kernel, stride, pad, dilation=1):
    """Caffe's deconvolution output size: stride * (size - 1) + extent - 2 * pad."""
    extent = dilation * (kernel - 1) + 1
    return stride * (size - 1) + extent - 2 * pad


def im2col(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1, out=None):
    """(N, C, H, W) -> (N, C, kh, kw, OH, OW): for each kernel tap, the strided input it meets."""
    if backend.is_gpu(x):
        return im2col_gpu(x, kh, kw, sh, sw, ph, pw, dh, dw, out)
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    oh = conv_outsize(h, kh, sh, ph, dh)
    ow = conv_outsize(w, kw, sw, pw, dw)
    if out is None:
        out = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            _copy_tap(x, out[:, :, ky, kx], ky * dh - ph, kx * dw - pw, sh, sw)
    return out


def _tap_range(offset, stride, out_size, in_size):
    """Output indices o with 0 <= offset + o*stride < in_size, as (first o, end o, first input index)."""
    first = min(out_size, (-offset + stride - 1) // stride) if offset < 0 else 0
    last = in_size - 1 - offset
    end = max(first, min(out_size, last // stride + 1)) if last >= 0 else first
    return first, end, offset + first * stride


def _copy_tap(x, dst, oy, ox, sh, sw):
    h, w = x.shape[2:]
    oh, ow = dst.shape[2:]
    y0, y1, iy = _tap_range(oy, sh, oh, h)
    x0, x1, ix = _tap_range(ox, sw, ow, w)
    # zero only the border that falls in the padding, copy the rest in one strided slice
    if y0 > 0:
        dst[:, :, :y0] = 0
    if y1 < oh:
        dst[:, :, y1:] = 0
    if x0 > 0:
        dst[:, :, y0:y1, :x0] = 0
    if x1 < ow:
        dst[:, :, y0:y1, x1:] = 0
    if y1 > y0 and x1 > x0:
        dst[:, :, y0:y1, x0:x1] = x[:, :, iy:iy + (y1 - y0 - 1) * sh + 1:sh, ix:ix + (x1 - x0 - 1) * sw + 1:sw]


def col2im(col, h, w, sh, sw, ph, pw, dh=1, dw=1, out=None):
    """(N, C, kh, kw, OH, OW) -> (N, C, H, W), summing the taps that meet each input pixel."""
    if backend.is_gpu(col):
        return col2im_gpu(col, h, w, sh, sw, ph, pw, dh, dw, out)
    xp = backend.get_array_module(col)
    n, c, kh, kw, oh, ow = col.shape
    if out is None:
        out = xp.zeros((n, c, h, w), dtype=col.dtype)
    else:
        out[...] = 0
    for ky in range(kh):
        for kx in range(kw):
            y0, y1, iy = _tap_range(ky * dh - ph, sh, oh, h)
            x0, x1, ix = _tap_range(kx * dw - pw, sw, ow, w)
            if y1 > y0 and x1 > x0:
                out[:, :, iy:iy + (y1 - y0 - 1) * sh + 1:sh, ix:ix + (x1 - x0 - 1) * sw + 1:sw] += \
                    col[:, :, ky, kx, y0:y1, x0:x1]
    return out


# ---------------------------------------------------------------------------------------------------------------
# GPU kernels: im2col and col2im, one ElementwiseKernel each (cf. chainer's im2col_gpu/col2im_gpu), with dilation.
# Their numpy twins, and test oracles, are im2col and col2im above, whose Python loop over the kh*kw taps costs a
# few kernel launches per tap on the GPU (a 16x16 deconvolution has 256). col2im gathers: each image cell sums the
# taps that meet it in the twin's (ky, kx) order, without atomics, so the sums round alike. Indices are 32-bit:
# arrays up to 2^31 elements (FCN's largest column buffer at 500x500 has 2.8e8).

_GEOMETRY = ("int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, int32 sy, int32 sx, int32 ph, "
             "int32 pw, int32 dil_y, int32 dil_x")

_im2col_fwd = backend.ElementwiseKernel(
    "raw T img, " + _GEOMETRY,
    "T col",
    """
    int c0 = i / (kh * kw * out_h * out_w);
    int ky = i / (kw * out_h * out_w) % kh;
    int kx = i / (out_h * out_w) % kw;
    int out_y = i / out_w % out_h;
    int out_x = i % out_w;
    int in_y = ky * dil_y + out_y * sy - ph;
    int in_x = kx * dil_x + out_x * sx - pw;
    if (in_y >= 0 && in_y < h && in_x >= 0 && in_x < w) {
      col = img[in_x + w * (in_y + h * c0)];
    } else {
      col = 0;
    }
    """,
    "fcn_im2col")

_col2im_fwd = backend.ElementwiseKernel(
    "raw T col, " + _GEOMETRY,
    "T img",
    """
    int c0 = i / (h * w);
    int y = i / w % h + ph;
    int x = i % w + pw;
    T acc = 0;
    // undilated, only the taps congruent to the pixel modulo the stride meet it: step over the rest (FCN-32s's
    // k64 s32 upsampling visits 2 x 2 taps a pixel instead of 64 x 64), in the same ascending order
    for (int ky = dil_y == 1 ? y % sy : 0; ky < kh; ky += dil_y == 1 ? sy : 1) {
      int out_y = y - ky * dil_y;
      if (out_y < 0 || out_y % sy != 0) continue;
      out_y /= sy;
      if (out_y >= out_h) continue;
      for (int kx = dil_x == 1 ? x % sx : 0; kx < kw; kx += dil_x == 1 ? sx : 1) {
        int out_x = x - kx * dil_x;
        if (out_x < 0 || out_x % sx != 0) continue;
        out_x /= sx;
        if (out_x >= out_w) continue;
        acc += col[(((c0 * kh + ky) * kw + kx) * out_h + out_y) * out_w + out_x];
      }
    }
    img = acc;
    """,
    "fcn_col2im")

INDEX_LIMIT = 2 ** 31


def _check_size(*arrays):
    for a in arrays:
        if a.size >= INDEX_LIMIT:
            raise ValueError(f"an array of shape {a.shape} has {a.size} elements, more than the GPU im2col/col2im "
                             f"kernels' 32-bit indices reach ({INDEX_LIMIT}); use a smaller input")


def im2col_gpu(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1, out=None):
    """(N, C, H, W) -> (N, C, kh, kw, OH, OW), as layers.im2col.im2col, in one kernel."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = conv_outsize(h, kh, sh, ph, dh), conv_outsize(w, kw, sw, pw, dw)
    if out is None:
        out = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    x = xp.ascontiguousarray(x)
    _check_size(x, out)
    _im2col_fwd(x, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, out)
    return out


def col2im_gpu(col, h, w, sh, sw, ph, pw, dh=1, dw=1, out=None):
    """(N, C, kh, kw, OH, OW) -> (N, C, H, W), as layers.im2col.col2im, in one kernel (every cell is written)."""
    xp = backend.get_array_module(col)
    n, c, kh, kw, oh, ow = col.shape
    if out is None:
        out = xp.empty((n, c, h, w), dtype=col.dtype)
    col = xp.ascontiguousarray(col)
    _check_size(col, out)
    _col2im_fwd(col, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# CPU kernels: a convolution as a few large BLAS calls over blocks of output rows, so that the buffers stay in
# cache and their size stays bounded (a whole-image im2col of FCN's conv1_2 at 500x500 would take 1.1 GB).
# - stride 1 with enough input channels ("tap" lowering): zero-pad a block of input rows once, W_b = OW + extent
#   - 1 wide; each kernel tap is then one GEMM over a shifted slice of that block, accumulated with beta = 1. Each
#   output row is computed W_b wide and the extra (wrapped-around) columns are dropped. No im2col copy.
# - 3x3, stride 1, many channels (Winograd F(2x2, 3x3)): each 4x4 input tile and each kernel are transformed, 16
#   GEMMs over the tiles take the place of 9 over the pixels (2.25x fewer multiplications), and 2x2 outputs per
#   tile come back by the inverse transform. The transforms are additions and halvings: the result stays within
#   a few float32 ulps of the direct sum (see tests/layers/test_conv_kernels.py).
# - otherwise ("col" lowering): im2col of a block of rows, then one GEMM with K = C*kh*kw.
# The GEMMs call BLAS directly (scipy.linalg.cython_blas through ctypes), so that row strides, offsets and
# beta = 1 cost no copies, which numpy.matmul and f2py's wrappers cannot promise. BLAS runs single-threaded
# and the blocks are shared out to a few threads of our own (ctypes and numpy release the GIL): a
# multi-threaded BLAS pays a thread wake-up on every call, which on a busy machine costs milliseconds.

def _load_blas():
    """{dtype: (Fortran ?gemm function, ctypes scalar)} from scipy's BLAS, or {} where it cannot be had."""
    try:
        from scipy.linalg import cython_blas
        name_of = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", ctypes.pythonapi))
        pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
            ("PyCapsule_GetPointer", ctypes.pythonapi))
        p = ctypes.c_void_p
        proto = ctypes.CFUNCTYPE(None, p, p, p, p, p, p, p, p, p, p, p, p, p)
        found = {}
        for dtype, name, scalar in ((numpy.float32, "sgemm", ctypes.c_float),
                                    (numpy.float64, "dgemm", ctypes.c_double)):
            capsule = cython_blas.__pyx_capi__[name]
            found[numpy.dtype(dtype)] = (proto(pointer(capsule, name_of(capsule))), scalar)
        return found
    except Exception:                               # no scipy, or a scipy without the Cython BLAS capsules
        return {}


def _blas_thread_control():
    """(get, set) of the thread count of the OpenBLAS behind scipy, or None (then BLAS keeps its threads).

    Looks where scipy's wheels bundle OpenBLAS, then for a system OpenBLAS, and takes a library only if this
    process has loaded it already (RTLD_NOLOAD), i.e. the one scipy links against."""
    try:
        import scipy
        here = os.path.dirname(scipy.__file__)
        paths = sorted(glob.glob(os.path.join(here, "..", "scipy.libs", "*openblas*")) +
                       glob.glob(os.path.join(here, ".dylibs", "*openblas*")))
        system = ctypes.util.find_library("openblas")
        for path in paths + ([system] if system else []):
            try:
                lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
            except OSError:                     # not loaded: not the BLAS scipy uses
                continue
            for prefix in ("scipy_openblas", "openblas"):
                get = getattr(lib, prefix + "_get_num_threads", None)
                put = getattr(lib, prefix + "_set_num_threads", None)
                if get is not None and put is not None:
                    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                    return get, put
    except Exception:                           # no RTLD_NOLOAD (Windows), no scipy: leave BLAS as it is
        pass
    return None


_BLAS = _load_blas()
_THREADS = _blas_thread_control() if _BLAS else None


def cpu_kernels_for(*arrays):
    """Whether the CPU kernels below apply: C-contiguous numpy arrays of one dtype that BLAS has."""
    return all(type(a) is numpy.ndarray and a.dtype in _BLAS and a.dtype == arrays[0].dtype and a.flags.c_contiguous
               for a in arrays)


class _Gemm:
    """Row-major C (m x n) = op(A) op(B) (+ C) on raw addresses with row strides. One per thread."""

    def __init__(self, dtype):
        self.fn, scalar = _BLAS[numpy.dtype(dtype)]
        self.itemsize = numpy.dtype(dtype).itemsize
        self.ints = [ctypes.c_int() for _ in range(6)]
        self.refs = [ctypes.byref(i) for i in self.ints]
        self.one, self.zero = scalar(1.0), scalar(0.0)
        self.flags = {False: ctypes.c_char_p(b"N"), True: ctypes.c_char_p(b"T")}

    def __call__(self, m, n, k, a, lda, b, ldb, c, ldc, beta=False, trans_a=False, trans_b=False):
        # BLAS is column-major, where a row-major X with row stride ld is X^T: compute C^T = op(B)^T op(A)^T
        i, r = self.ints, self.refs
        i[0].value, i[1].value, i[2].value, i[3].value, i[4].value, i[5].value = n, m, k, ldb, lda, ldc
        self.fn(self.flags[trans_b], self.flags[trans_a], r[0], r[1], r[2], ctypes.byref(self.one), b, r[3], a,
                r[4], ctypes.byref(self.one if beta else self.zero), c, r[5])


def _address(a):
    return a.__array_interface__["data"][0]


class _Job:
    """Chunks 0..count-1 of fn, taken one at a time by whichever thread is free (the caller included)."""

    def __init__(self, fn, count):
        self.fn, self.count = fn, count
        self.next = itertools.count()
        self.left = count
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.error = None

    def work(self):
        while True:
            i = next(self.next)
            if i >= self.count:
                return
            try:
                self.fn(i)
            except BaseException as e:          # raised again in the caller
                self.error = self.error or e
            with self.lock:
                self.left -= 1
                if self.left == 0:
                    self.done.set()


class _Pool:
    """Persistent helper threads. The caller works too and waits only for chunks a helper has started, so a
    helper that the OS is slow to schedule (or that a fork left behind) costs nothing."""

    def __init__(self):
        self.size = 1
        self.jobs = queue.SimpleQueue()
        self.helpers = 0
        self.depth = 0
        self.lock = threading.Lock()

    def _serve(self):
        while True:
            self.jobs.get().work()

    def __enter__(self):
        """Make BLAS single-threaded while the kernels run, and size the pool to the threads BLAS had."""
        with self.lock:
            if self.depth == 0 and _THREADS is not None:
                self.saved = _THREADS[0]()
                self.size = max(1, self.saved)
                _THREADS[1](1)
                while self.helpers < self.size - 1:
                    threading.Thread(target=self._serve, daemon=True, name="fcn-caffe-conv").start()
                    self.helpers += 1
            self.depth += 1
        return self

    def __exit__(self, *exc):
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and _THREADS is not None:
                _THREADS[1](self.saved)

    def map(self, fn, count):
        if count <= 1 or self.size <= 1:
            for i in range(count):
                fn(i)
            return
        job = _Job(fn, count)
        for _ in range(min(self.size, count) - 1):
            self.jobs.put(job)
        job.work()
        job.done.wait()
        if job.error is not None:
            raise job.error


_POOL = _Pool()


def parallel_map(fn, count):
    """fn(0), ..., fn(count - 1) on the CPU kernel threads (for numpy work that releases the GIL)."""
    with _POOL:
        _POOL.map(fn, count)


class _PerThread(dict):
    """Lazily built per-thread scratch (buffers, a _Gemm) for one kernel call."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def get(self):
        key = threading.get_ident()
        if key not in self:
            self[key] = self.make()
        return self[key]


def gemm(a, b, c, trans_a=False, trans_b=False, beta=False):
    """c = op(a) @ op(b) (+ c when beta), for 2-D numpy arrays whose rows are contiguous (any row stride)."""
    for x in (a, b, c):
        if x.dtype != c.dtype or (x.shape[1] > 1 and x.strides[1] != x.itemsize) or x.strides[0] % x.itemsize:
            raise ValueError(f"gemm needs {c.dtype} matrices with contiguous rows, got strides {x.strides}")
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    ld = [max(1, x.strides[0] // x.itemsize) for x in (a, b, c)]
    with _POOL:
        _Gemm(c.dtype)(m, n, k, _address(a), ld[0], _address(b), ld[1], _address(c), ld[2], beta, trans_a, trans_b)
    return c


_MIN_SLAB = 64                 # rows or columns per GEMM slab: below that, per-call costs show


def _split_gemm(dtype, m, n, k, a, lda, b, ldb, c, ldc, beta=False, trans_a=False, trans_b=False):
    """One GEMM shared out to the pool in slabs of C rows (or columns, when C is wide)."""
    gemms = _PerThread(lambda: _Gemm(dtype))
    size = numpy.dtype(dtype).itemsize
    by_rows = m >= n
    total = m if by_rows else n
    step = max(_MIN_SLAB, -(-total // (4 * _POOL.size)))

    def chunk(i):
        s = i * step
        e = min(total, s + step)
        if by_rows:     # rows s..e of C come from rows (or, transposed, columns) s..e of A
            a_at = a + s * size * (1 if trans_a else lda)
            gemms.get()(e - s, n, k, a_at, lda, b, ldb, c + s * ldc * size, ldc, beta, trans_a, trans_b)
        else:
            b_at = b + s * size * (ldb if trans_b else 1)
            gemms.get()(m, e - s, k, a, lda, b_at, ldb, c + s * size, ldc, beta, trans_a, trans_b)

    _POOL.map(chunk, -(-total // step))


def _touched(out_size, in_size, kernel, stride, pad, dilation):
    """The output range [first, end) whose windows overlap the input; the rest sees only padding."""
    extent = dilation * (kernel - 1) + 1
    first = max(0, -(-(pad - extent + 1) // stride))
    end = min(out_size, (in_size - 1 + pad) // stride + 1)
    return first, max(first, end)


def _uses_taps(c_in, out_w, kernel_w, stride, dilation_w):
    # a tap GEMM has K = c_in: thin below ~16; and the W_b - OW wrapped columns per row are wasted work
    return stride == (1, 1) and c_in >= 16 and out_w + dilation_w * (kernel_w - 1) <= 1.25 * out_w


def _block_rows(cols_per_row, m, itemsize, total_rows, scratch_bytes=1 << 20, min_cols=1024):
    """Rows per block: an (m x rows*cols) output block of about `scratch_bytes`, but GEMMs min_cols wide.
    Where BLAS keeps its own threads, each call costs a wake-up of them: then fewer, larger blocks."""
    if _THREADS is None:
        scratch_bytes *= 16
    cols = max(min_cols, scratch_bytes // (itemsize * max(m, 1)))
    return max(1, min(total_rows, cols // max(cols_per_row, 1)))


class _Rows:
    """A zero-padded block of input rows, channel planes `plane` elements apart (+ a tail for wrapped reads)."""

    def __init__(self, c, rows, width, tail, dtype):
        self.width = width
        self.plane = rows * width
        self.flat = numpy.zeros(c * self.plane + tail, dtype=dtype)
        self.grid = self.flat[:c * self.plane].reshape(c, rows, width)
        self.address = _address(self.flat)

    def fill(self, x, y0, nrows, x0):
        """Input rows y0..y0+nrows-1, columns x0..x0+width-1 (zero outside x) into the top of the block."""
        h, w = x.shape[1:]
        a, b = max(y0, 0), min(y0 + nrows, h)
        c0, c1 = max(x0, 0), min(x0 + self.width, w)
        g = self.grid
        if b <= a or c1 <= c0:
            g[:, :nrows] = 0
            return
        if a > y0:
            g[:, :a - y0] = 0
        if b < y0 + nrows:
            g[:, b - y0:nrows] = 0
        # columns outside [c0, c1) are never written, so they keep the zeros they were allocated with
        g[:, a - y0:b - y0, c0 - x0:c1 - x0] = x[:, a:b, c0:c1]


def _tap_conv(x, taps, out, bias, kernel, pad, dilation):
    """Stride-1 convolution of x (C, H, W) into out (M, OH, OW) with taps (kh*kw, M, C): a GEMM per tap."""
    (kh, kw), (ph, pw), (dh, dw) = kernel, pad, dilation
    c, h, w = x.shape
    m, oh, ow = out.shape
    oy0, oy1 = _touched(oh, h, kh, 1, ph, dh)
    ox0, ox1 = _touched(ow, w, kw, 1, pw, dw)
    if (oy0, oy1, ox0, ox1) != (0, oh, 0, ow):
        out[...] = 0 if bias is None else bias.reshape(-1, 1, 1)      # windows entirely in the padding
    if oy1 <= oy0 or ox1 <= ox0:
        return
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    cols = ox1 - ox0
    wb = cols + ew - 1
    size = x.itemsize
    rows = _block_rows(wb, m, size, -(-(oy1 - oy0) // _POOL.size))
    scratch = _PerThread(lambda: (_Rows(c, rows + eh - 1, wb, ew - 1, x.dtype),
                                  numpy.empty((m, rows * wb), dtype=x.dtype), _Gemm(x.dtype)))
    taps_at = _address(taps)
    bias3 = None if bias is None else bias.reshape(-1, 1, 1)

    def block(i):
        block, ybuf, gemm_ = scratch.get()
        r0 = oy0 + i * rows
        n = min(rows, oy1 - r0)
        block.fill(x, r0 - ph, n + eh - 1, ox0 - pw)
        y_at = _address(ybuf)
        for t in range(kh * kw):
            ky, kx = divmod(t, kw)
            at = block.address + (ky * dh * wb + kx * dw) * size
            gemm_(m, n * wb, c, taps_at + t * m * c * size, c, at, block.plane, y_at, rows * wb, beta=t > 0)
        y = ybuf[:, :n * wb].reshape(m, n, wb)[:, :, :cols]
        dst = out[:, r0:r0 + n, ox0:ox1]
        if bias3 is None:
            dst[...] = y
        else:
            numpy.add(y, bias3, out=dst)

    _POOL.map(block, -(-(oy1 - oy0) // rows))


def _tap_weight_grad(x, dy, dtaps, kernel, pad, dilation):
    """dtaps (kh*kw, M, C) += the weight gradient of the stride-1 convolution of x (C, H, W) -> dy (M, OH, OW)."""
    (kh, kw), (ph, pw), (dh, dw) = kernel, pad, dilation
    c, h, w = x.shape
    m, oh, ow = dy.shape
    oy0, oy1 = _touched(oh, h, kh, 1, ph, dh)           # the other outputs see only zeros: no weight gradient
    ox0, ox1 = _touched(ow, w, kw, 1, pw, dw)
    if oy1 <= oy0 or ox1 <= ox0:
        return
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    cols = ox1 - ox0
    wb = cols + ew - 1
    size = x.itemsize
    rows = _block_rows(wb, max(m, c), size, -(-(oy1 - oy0) // _POOL.size))
    # per thread: the input rows, the output gradient rows (the wrapped columns stay 0, so they add nothing)
    # and a gradient accumulator, summed at the end
    scratch = _PerThread(lambda: (_Rows(c, rows + eh - 1, wb, ew - 1, x.dtype),
                                  numpy.zeros((m, rows * wb), dtype=x.dtype),
                                  numpy.zeros(dtaps.shape, dtype=x.dtype), _Gemm(x.dtype)))

    def block(i):
        block, dybuf, acc, gemm_ = scratch.get()
        r0 = oy0 + i * rows
        n = min(rows, oy1 - r0)
        block.fill(x, r0 - ph, n + eh - 1, ox0 - pw)
        dybuf[:, :n * wb].reshape(m, n, wb)[:, :, :cols] = dy[:, r0:r0 + n, ox0:ox1]
        d_at, acc_at = _address(dybuf), _address(acc)
        for t in range(kh * kw):
            ky, kx = divmod(t, kw)
            at = block.address + (ky * dh * wb + kx * dw) * size
            gemm_(m, c, n * wb, d_at, rows * wb, at, block.plane, acc_at + t * m * c * size, c,
                  beta=True, trans_b=True)

    _POOL.map(block, -(-(oy1 - oy0) // rows))
    for _, _, acc, _ in scratch.values():
        dtaps += acc


_WINOGRAD_TILES = 1 << 18      # tiles x (C + M) per block: ~17 MB of scratch per thread
_G = numpy.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])        # kernel transform, F(2x2, 3x3)
_BT = ((0, 2, numpy.subtract), (1, 2, numpy.add), (2, 1, numpy.subtract), (1, 3, numpy.subtract))  # B^T rows


def _uses_winograd(kernel, stride, dilation, c_in, m_out, out_h, out_w):
    # the transforms cost passes over the tiles that only many channels pay back (measured on FCN's layers:
    # a gain from 128 -> 256 channels up, none at 128 -> 128 or on maps under ~80x80)
    return (kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1) and c_in + m_out >= 384 and
            out_h * out_w >= 6400)


def _g_row(r, k0, k1, k2):
    """Row r of G applied to three taps."""
    if r in (0, 3):
        return k0 if r == 0 else k2
    return (k0 + k1 + k2) / 2 if r == 1 else (k0 - k1 + k2) / 2


def _winograd_weights(w):
    """(16, M, C) transformed kernels G w G^T of w (M, C, 3, 3), summed in float64 a column at a time (a few
    M x C temporaries). Written out rather than as a matrix product: numpy's BLAS threads, once woken, spin a
    while on the cores that the kernels' own threads need."""
    m, c = w.shape[:2]
    u = numpy.empty((4, 4, m, c), dtype=w.dtype)
    for b in range(4):
        column = [_g_row(b, *(w[:, :, i, j].astype(numpy.float64) for j in range(3))) for i in range(3)]
        for a in range(4):
            u[a, b] = _g_row(a, *column)
    return u.reshape(16, m, c)


def _winograd_conv(x, u, out, bias, pad):
    """3x3 stride-1 convolution of x (C, H, W) into out (M, OH, OW), u = _winograd_weights(weight)."""
    ph, pw = pad
    c, h, w = x.shape
    m, oh, ow = out.shape
    oy0, oy1 = _touched(oh, h, 3, 1, ph, 1)
    ox0, ox1 = _touched(ow, w, 3, 1, pw, 1)
    if (oy0, oy1, ox0, ox1) != (0, oh, 0, ow):
        out[...] = 0 if bias is None else bias.reshape(-1, 1, 1)
    if oy1 <= oy0 or ox1 <= ox0:
        return
    cols = ox1 - ox0
    tw = -(-cols // 2)                                   # tiles per row; a block is tr rows of tiles
    tiles = max(tw, _WINOGRAD_TILES // (c + m))         # the transformed tiles of a block stay near the cache
    tr = max(1, min(-(-(oy1 - oy0) // 2), tiles // tw, -(-(oy1 - oy0) // (4 * _POOL.size))))
    t = tr * tw
    size = x.itemsize
    scratch = _PerThread(lambda: (
        _Rows(c, 2 * tr + 2, 2 * tw + 2, 0, x.dtype), numpy.empty((c, tr, 2 * tw + 2), dtype=x.dtype),
        numpy.empty((16, c, t), dtype=x.dtype), numpy.empty((16, m, t), dtype=x.dtype),
        numpy.empty((4, m, tr, tw), dtype=x.dtype), numpy.empty((m, 2 * tr, 2 * tw), dtype=x.dtype), _Gemm(x.dtype)))
    u_at = _address(u)
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
        v_at, p_at = _address(v), _address(prod)
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

    _POOL.map(block, -(-(oy1 - oy0) // (2 * tr)))


def _col_rows(x, col, r0, n, kernel, stride, pad, dilation, cells=None):
    """im2col of output rows r0..r0+n-1 into col (C, kh, kw, >=n, OW), from x or, when given, its _Cells."""
    if cells is not None:
        return cells.gather(col, r0, n)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    for ky in range(kh):
        for kx in range(kw):
            _copy_tap(x[None], col[None, :, ky, kx, :n], r0 * sh + ky * dh - ph, kx * dw - pw, sh, sw)


def _uses_cells(kernel, stride, dilation):
    """Whether the stride divides the kernel (undilated, strided): then every tap lands in a whole cell of
    stride x stride pixels, a whole number of cells from its window's corner, and im2col/col2im move
    (kh/sh)*(kw/sw) blocks of cells instead of kh*kw single taps: FCN's k64 s32 upsampling is 4 blocks, not 4096."""
    (kh, kw), (sh, sw) = kernel, stride
    return dilation == (1, 1) and sh * sw > 1 and kh % sh == 0 and kw % sw == 0


class _Cells:
    """A zero-padded image (C, H, W) on a canvas of cells: grid[c, i, r, j, q] is padded pixel (i*sh + r, j*sw + q),
    so tap (a*sh + r, b*sw + q) of output (y, x) is grid[c, y + a, r, x + b, q]."""

    def __init__(self, c, h, w, out_h, out_w, kernel, stride, pad, dtype):
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
        self.blocks = (kh // sh, kw // sw)
        self.stride = stride
        self.out_w = out_w
        # every window, and every image pixel (rows past the last window get a zero gradient), on the canvas
        rows = max(out_h + self.blocks[0] - 1, -(-(ph + h) // sh))
        cols = max(out_w + self.blocks[1] - 1, -(-(pw + w) // sw))
        self.canvas = numpy.zeros((c, rows * sh, cols * sw), dtype=dtype)
        self.grid = self.canvas.reshape(c, rows, sh, cols, sw)
        self.image = self.canvas[:, ph:ph + h, pw:pw + w]

    def _blocks_of(self, col):
        """col (C, kh, kw, rows, OW) as (C, kh/sh, sh, kw/sw, sw, rows, OW)."""
        (fh, fw), (sh, sw) = self.blocks, self.stride
        return col.reshape(col.shape[0], fh, sh, fw, sw, *col.shape[3:])

    def gather(self, col, r0, n):
        """im2col of output rows r0..r0+n-1 into col (C, kh, kw, >=n, OW)."""
        col = self._blocks_of(col)
        ow = self.out_w
        for a in range(self.blocks[0]):
            for b in range(self.blocks[1]):
                col[:, a, :, b, :, :n] = self.grid[:, r0 + a:r0 + a + n, :, b:b + ow].transpose(0, 2, 4, 1, 3)

    def scatter(self, dcol, r0, n, channels):
        """col2im: add dcol (C, kh, kw, >=n, OW), output rows r0..r0+n-1, onto the canvas (those channels)."""
        dcol = self._blocks_of(dcol)
        ow = self.out_w
        for a in range(self.blocks[0]):
            for b in range(self.blocks[1]):
                self.grid[channels, r0 + a:r0 + a + n, :, b:b + ow] += \
                    dcol[channels, a, :, b, :, :n].transpose(0, 3, 1, 4, 2)


def _col_block_rows(k, ow, oh, itemsize, budget=32 << 20):
    """Rows per im2col block: a column buffer of at most `budget` bytes (or one row)."""
    return max(1, min(oh, budget // (k * ow * itemsize)))


def _col_conv(x, wmat, out, bias, kernel, stride, pad, dilation):
    """Convolution of x (C, H, W) into out (M, OH, OW) with wmat (M, C*kh*kw): blocked im2col + GEMM."""
    c, h, w = x.shape
    m, oh, ow = out.shape
    k = wmat.shape[1]
    oy0, oy1 = _touched(oh, h, kernel[0], stride[0], pad[0], dilation[0])
    if (oy0, oy1) != (0, oh):
        out[...] = 0 if bias is None else bias.reshape(-1, 1, 1)      # rows that see only padding
    rows = _col_block_rows(k, ow, oy1 - oy0, x.itemsize)
    col = numpy.empty((c, kernel[0], kernel[1], rows, ow), dtype=x.dtype)
    cells = _padded_cells(x, oh, ow, kernel, stride, pad, dilation)
    out2 = out.reshape(m, oh * ow)
    for r0 in range(oy0, oy1, rows):
        n = min(rows, oy1 - r0)
        _col_rows(x, col, r0, n, kernel, stride, pad, dilation, cells)
        _split_gemm(x.dtype, m, n * ow, k, _address(wmat), k, _address(col), rows * ow,
                    _address(out2[:, r0 * ow:]), oh * ow)
        if bias is not None:
            out[:, r0:r0 + n] += bias.reshape(-1, 1, 1)


def _col_data_grad(dy, wmat, dx, kernel, stride, pad, dilation):
    """dx (C, H, W) = the input gradient of a convolution with wmat (M, C*kh*kw): GEMM + blocked col2im."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    m, oh, ow = dy.shape
    c, h, w = dx.shape
    k = wmat.shape[1]
    rows = _col_block_rows(k, ow, oh, dy.itemsize)
    dcol = numpy.empty((c, kh, kw, rows, ow), dtype=dy.dtype)
    dy2 = dy.reshape(m, oh * ow)
    cells = _Cells(c, h, w, oh, ow, kernel, stride, pad, dx.dtype) if _uses_cells(kernel, stride, dilation) else None
    if cells is None:
        dx[...] = 0

    chunks = min(c, 2 * _POOL.size)
    step = -(-c // chunks)

    def scatter(i, r0, n):         # columns of a slab of channels, added where they came from
        cs = slice(i * step, (i + 1) * step)
        if cells is not None:
            return cells.scatter(dcol, r0, n, cs)
        for ky in range(kh):
            y0, y1, iy = _tap_range(r0 * sh + ky * dh - ph, sh, n, h)
            for kx in range(kw):
                x0, x1, ix = _tap_range(kx * dw - pw, sw, ow, w)
                if y1 > y0 and x1 > x0:
                    dx[cs, iy:iy + (y1 - y0 - 1) * sh + 1:sh, ix:ix + (x1 - x0 - 1) * sw + 1:sw] += \
                        dcol[cs, ky, kx, y0:y1, x0:x1]

    for r0 in range(0, oh, rows):
        n = min(rows, oh - r0)
        _split_gemm(dy.dtype, k, n * ow, m, _address(wmat), k, _address(dy2[:, r0 * ow:]), oh * ow,
                    _address(dcol), rows * ow, trans_a=True)
        _POOL.map(lambda i: scatter(i, r0, n), -(-c // step))    # slabs never overlap: no two threads add alike
    if cells is not None:
        dx[...] = cells.image


def _padded_cells(x, out_h, out_w, kernel, stride, pad, dilation):
    """x (C, H, W) on a _Cells canvas where the geometry allows it, else None."""
    if not _uses_cells(kernel, stride, dilation):
        return None
    cells = _Cells(*x.shape, out_h, out_w, kernel, stride, pad, x.dtype)
    cells.image[...] = x
    return cells


def _col_weight_grad(x, dy, dwmat, kernel, stride, pad, dilation):
    """dwmat (M, C*kh*kw) += the weight gradient: blocked im2col + GEMM."""
    c, h, w = x.shape
    m, oh, ow = dy.shape
    k = dwmat.shape[1]
    oy0, oy1 = _touched(oh, h, kernel[0], stride[0], pad[0], dilation[0])
    rows = _col_block_rows(k, ow, oy1 - oy0, x.itemsize)
    col = numpy.empty((c, kernel[0], kernel[1], rows, ow), dtype=x.dtype)
    cells = _padded_cells(x, oh, ow, kernel, stride, pad, dilation)
    dy2 = dy.reshape(m, oh * ow)
    for r0 in range(oy0, oy1, rows):
        n = min(rows, oy1 - r0)
        _col_rows(x, col, r0, n, kernel, stride, pad, dilation, cells)
        _split_gemm(x.dtype, m, k, n * ow, _address(dy2[:, r0 * ow:]), oh * ow, _address(col), rows * ow,
                    _address(dwmat), k, beta=True, trans_b=True)


def _batched(n, k, out_size, kernel, itemsize, budget=64 << 20):
    """Whether to lower the whole batch at once: many small images, whose per-image GEMMs are so narrow that
    per-call costs dominate (a classifier's late layers), when the batch's column matrix fits in `budget`
    (and the kernel has few taps: the whole-batch col2im moves them one by one)."""
    return n > 1 and out_size <= 2048 and kernel[0] * kernel[1] <= 49 and n * k * out_size * itemsize <= budget


def _batch_columns(x, kernel, stride, pad, dilation, oh, ow):
    """im2col of the whole batch x (N, C, H, W): a (C*kh*kw, N*OH*OW) matrix (im2col on the batch seen channel
    first, written through a view of that layout)."""
    n, c = x.shape[:2]
    col = numpy.empty((c, *kernel, n, oh, ow), dtype=x.dtype)
    im2col(x.transpose(1, 0, 2, 3), *kernel, *stride, *pad, *dilation, out=col.transpose(0, 3, 1, 2, 4, 5))
    return col.reshape(-1, n * oh * ow)


def _by_channel(a):
    """(N, C, H, W) -> the (C, N*H*W) matrix, copied."""
    n, c = a.shape[:2]
    return numpy.ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(c, -1)


def _batch_conv(x, wmat, out, bias, kernel, stride, pad, dilation):
    """out (N, M, OH, OW) = the convolution of the whole batch x (N, C, H, W): one im2col, one GEMM."""
    n, m, oh, ow = out.shape
    col = _batch_columns(x, kernel, stride, pad, dilation, oh, ow)
    y = numpy.empty((m, n * oh * ow), dtype=x.dtype)
    k = col.shape[0]
    _split_gemm(x.dtype, m, y.shape[1], k, _address(wmat), k, _address(col), y.shape[1], _address(y), y.shape[1])
    y = y.reshape(m, n, oh, ow).transpose(1, 0, 2, 3)
    if bias is None:
        out[...] = y
    else:
        numpy.add(y, bias.reshape(-1, 1, 1), out=out)


def _batch_data_grad(dy, wmat, dx, kernel, stride, pad, dilation):
    """dx (N, C, H, W) = the input gradient of the whole batch: one GEMM, then col2im tap by tap."""
    kh, kw = kernel
    n, m, oh, ow = dy.shape
    c, h, w = dx.shape[1:]
    dy2 = _by_channel(dy)
    k = wmat.shape[1]
    dcol = numpy.empty((k, dy2.shape[1]), dtype=dy.dtype)
    _split_gemm(dy.dtype, k, dy2.shape[1], m, _address(wmat), k, _address(dy2), dy2.shape[1], _address(dcol),
                dcol.shape[1], trans_a=True)
    # col2im on the batch seen channel first: (C, N, kh, kw, OH, OW) -> (C, N, H, W)
    grad = col2im(dcol.reshape(c, kh, kw, n, oh, ow).transpose(0, 3, 1, 2, 4, 5), h, w, *stride, *pad, *dilation)
    dx[...] = grad.transpose(1, 0, 2, 3)


def _batch_weight_grad(x, dy, dwmat, kernel, stride, pad, dilation):
    """dwmat (M, C*kh*kw) += the weight gradient over the whole batch: one im2col, one GEMM."""
    n, m, oh, ow = dy.shape
    col = _batch_columns(x, kernel, stride, pad, dilation, oh, ow)
    dy2 = _by_channel(dy)
    k = col.shape[0]
    _split_gemm(x.dtype, m, k, dy2.shape[1], _address(dy2), dy2.shape[1], _address(col), col.shape[1],
                _address(dwmat), k, beta=True, trans_b=True)


def _is_pointwise(kernel, stride, pad):
    return kernel == (1, 1) and stride == (1, 1) and pad == (0, 0)


def conv_forward_cpu(x, weight, bias, out, stride, pad, dilation, group=1):
    """out (N, M, OH, OW), C-contiguous, = convolution of x (N, C, H, W) with weight (M, C/group, kh, kw)
    + bias (M,) or None."""
    n, c, h, w = x.shape
    m, cg = weight.shape[:2]
    kernel = weight.shape[2:]
    mg = m // group
    x = numpy.ascontiguousarray(x)
    with _POOL:
        for g in range(group):
            wg = weight[g * mg:(g + 1) * mg]
            bg = None if bias is None else bias[g * mg:(g + 1) * mg]
            if _batched(n, cg * kernel[0] * kernel[1], out.shape[2] * out.shape[3], kernel, x.itemsize):
                _batch_conv(x[:, g * cg:(g + 1) * cg], numpy.ascontiguousarray(wg.reshape(mg, -1)),
                            out[:, g * mg:(g + 1) * mg], bg, kernel, stride, pad, dilation)
            elif _is_pointwise(kernel, stride, pad):
                wmat = numpy.ascontiguousarray(wg.reshape(mg, cg))
                for i in range(n):
                    o = out[i, g * mg:(g + 1) * mg]
                    _split_gemm(x.dtype, mg, h * w, cg, _address(wmat), cg, _address(x[i, g * cg:]), h * w,
                                _address(o), h * w)
                    if bg is not None:
                        o += bg.reshape(-1, 1, 1)
            elif _uses_winograd(kernel, stride, dilation, cg, mg, *out.shape[2:]):
                u = _winograd_weights(wg)
                for i in range(n):
                    _winograd_conv(x[i, g * cg:(g + 1) * cg], u, out[i, g * mg:(g + 1) * mg], bg, pad)
            elif _uses_taps(cg, out.shape[3], kernel[1], stride, dilation[1]):
                taps = numpy.ascontiguousarray(wg.transpose(2, 3, 0, 1)).reshape(-1, mg, cg)
                for i in range(n):
                    _tap_conv(x[i, g * cg:(g + 1) * cg], taps, out[i, g * mg:(g + 1) * mg], bg, kernel, pad,
                              dilation)
            else:
                wmat = numpy.ascontiguousarray(wg.reshape(mg, -1))
                for i in range(n):
                    _col_conv(x[i, g * cg:(g + 1) * cg], wmat, out[i, g * mg:(g + 1) * mg], bg, kernel, stride,
                              pad, dilation)
    return out


def conv_data_grad_cpu(dy, weight, dx, stride, pad, dilation, group=1):
    """dx (N, C, H, W), C-contiguous, = the input gradient of the convolution from its output gradient dy."""
    n, m, oh, ow = dy.shape
    c, h, w = dx.shape[1:]
    cg = weight.shape[1]
    kernel = weight.shape[2:]
    (kh, kw), (dh, dw) = kernel, dilation
    mg = m // group
    dy = numpy.ascontiguousarray(dy)
    with _POOL:
        for g in range(group):
            wg = weight[g * mg:(g + 1) * mg]
            if _batched(n, cg * kh * kw, oh * ow, kernel, dy.itemsize):
                _batch_data_grad(dy[:, g * mg:(g + 1) * mg], numpy.ascontiguousarray(wg.reshape(mg, -1)),
                                 dx[:, g * cg:(g + 1) * cg], kernel, stride, pad, dilation)
            elif _is_pointwise(kernel, stride, pad):
                wmat = numpy.ascontiguousarray(wg.reshape(mg, cg))
                for i in range(n):
                    _split_gemm(dy.dtype, cg, h * w, mg, _address(wmat), cg, _address(dy[i, g * mg:]), h * w,
                                _address(dx[i, g * cg:]), h * w, trans_a=True)
            elif _uses_winograd(kernel, stride, dilation, mg, cg, h, w):
                # stride 1: the input gradient is the convolution of dy with the flipped, transposed kernel
                u = _winograd_weights(numpy.ascontiguousarray(wg[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)))
                for i in range(n):
                    _winograd_conv(dy[i, g * mg:(g + 1) * mg], u, dx[i, g * cg:(g + 1) * cg], None,
                                   (2 - pad[0], 2 - pad[1]))
            elif _uses_taps(mg, w, kw, stride, dw):
                # stride 1: the input gradient is the convolution of dy with the flipped, transposed kernel
                taps = numpy.ascontiguousarray(wg[:, :, ::-1, ::-1].transpose(2, 3, 1, 0)).reshape(-1, cg, mg)
                flipped = (dh * (kh - 1) - pad[0], dw * (kw - 1) - pad[1])
                for i in range(n):
                    _tap_conv(dy[i, g * mg:(g + 1) * mg], taps, dx[i, g * cg:(g + 1) * cg], None, kernel,
                              flipped, dilation)
            else:
                wmat = numpy.ascontiguousarray(wg.reshape(mg, -1))
                for i in range(n):
                    _col_data_grad(dy[i, g * mg:(g + 1) * mg], wmat, dx[i, g * cg:(g + 1) * cg], kernel, stride,
                                   pad, dilation)
    return dx


def conv_weight_grad_cpu(x, dy, dweight, stride, pad, dilation, group=1):
    """dweight (M, C/group, kh, kw), C-contiguous, += the weight gradient of the convolution x -> dy."""
    n, c, h, w = x.shape
    m, oh, ow = dy.shape[1:]
    cg = dweight.shape[1]
    kernel = dweight.shape[2:]
    mg = m // group
    x = numpy.ascontiguousarray(x)
    dy = numpy.ascontiguousarray(dy)
    with _POOL:
        for g in range(group):
            dwg = dweight[g * mg:(g + 1) * mg]
            if _batched(n, cg * kernel[0] * kernel[1], oh * ow, kernel, x.itemsize):
                _batch_weight_grad(x[:, g * cg:(g + 1) * cg], dy[:, g * mg:(g + 1) * mg], dwg.reshape(mg, -1),
                                   kernel, stride, pad, dilation)
            elif _is_pointwise(kernel, stride, pad):
                for i in range(n):
                    _split_gemm(x.dtype, mg, cg, h * w, _address(dy[i, g * mg:]), h * w, _address(x[i, g * cg:]),
                                h * w, _address(dwg), cg, beta=True, trans_b=True)
            elif _uses_taps(cg, ow, kernel[1], stride, dilation[1]):
                dtaps = numpy.zeros((kernel[0] * kernel[1], mg, cg), dtype=x.dtype)
                for i in range(n):
                    _tap_weight_grad(x[i, g * cg:(g + 1) * cg], dy[i, g * mg:(g + 1) * mg], dtaps, kernel, pad,
                                     dilation)
                dwg += dtaps.reshape(*kernel, mg, cg).transpose(2, 3, 0, 1)
            else:
                dwmat = dwg.reshape(mg, -1)
                for i in range(n):
                    _col_weight_grad(x[i, g * cg:(g + 1) * cg], dy[i, g * mg:(g + 1) * mg], dwmat, kernel, stride,
                                     pad, dilation)
    return dweight
