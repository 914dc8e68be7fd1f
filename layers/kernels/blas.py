"""The ctypes binding to the BLAS behind scipy (?gemm through scipy.linalg.cython_blas's capsules), and the GEMMs
the CPU strategies call: row strides, offsets and beta = 1 cost no copies, which numpy.matmul and f2py's wrappers
cannot promise. BLAS runs single-threaded inside the thread pool (threads.py), which shares GEMMs out in slabs."""
import ctypes

import numpy

from layers import backend
from layers.kernels.threads import POOL, PerThread


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


BLAS = _load_blas()


def handles(*arrays):
    """Whether the CPU strategies can take these arrays: C-contiguous numpy arrays of one dtype that BLAS has
    (and not arrays the backend counts as the GPU's, as the CUDA simulator's numpy arrays)."""
    return not backend.is_gpu(arrays[0]) and all(
        type(a) is numpy.ndarray and a.dtype in BLAS and a.dtype == arrays[0].dtype and a.flags.c_contiguous
        for a in arrays)


class Gemm:
    """Row-major C (m x n) = op(A) op(B) (+ C) on raw addresses with row strides. One per thread."""

    def __init__(self, dtype):
        self.fn, scalar = BLAS[numpy.dtype(dtype)]
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


def address(a):
    """The address of a numpy array's first element."""
    return a.__array_interface__["data"][0]


def gemm(a, b, c, trans_a=False, trans_b=False, beta=False):
    """c = op(a) @ op(b) (+ c when beta), for 2-D numpy arrays whose rows are contiguous (any row stride)."""
    for x in (a, b, c):
        if x.dtype != c.dtype or (x.shape[1] > 1 and x.strides[1] != x.itemsize) or x.strides[0] % x.itemsize:
            raise ValueError(f"gemm needs {c.dtype} matrices with contiguous rows, got strides {x.strides}")
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    ld = [max(1, x.strides[0] // x.itemsize) for x in (a, b, c)]
    with POOL:
        Gemm(c.dtype)(m, n, k, address(a), ld[0], address(b), ld[1], address(c), ld[2], beta, trans_a, trans_b)
    return c


MIN_SLAB = 64                 # rows or columns per GEMM slab: below that, per-call costs show


def split_gemm(dtype, m, n, k, a, lda, b, ldb, c, ldc, beta=False, trans_a=False, trans_b=False):
    """One GEMM on addresses, shared out to the pool in slabs of C rows (or columns, when C is wide)."""
    gemms = PerThread(lambda: Gemm(dtype))
    size = numpy.dtype(dtype).itemsize
    by_rows = m >= n
    total = m if by_rows else n
    step = max(MIN_SLAB, -(-total // (4 * POOL.size)))

    def chunk(i):
        s = i * step
        e = min(total, s + step)
        if by_rows:     # rows s..e of C come from rows (or, transposed, columns) s..e of A
            a_at = a + s * size * (1 if trans_a else lda)
            gemms.get()(e - s, n, k, a_at, lda, b, ldb, c + s * ldc * size, ldc, beta, trans_a, trans_b)
        else:
            b_at = b + s * size * (ldb if trans_b else 1)
            gemms.get()(m, e - s, k, a, lda, b_at, ldb, c + s * size, ldc, beta, trans_a, trans_b)

    POOL.map(chunk, -(-total // step))
