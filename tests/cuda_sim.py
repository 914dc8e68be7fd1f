"""The GPU kernels' CUDA source, run on the CPU: where no GPU exists, this is how their code is tested.

A backend.ElementwiseKernel (in_params, out_params, operation) is turned into C++ with CuPy's conventions
(cupy/_core/_kernel.pyx): a typedef per type placeholder, `const T &x` bound to the current element of each
non-raw input and `T &y` to each non-raw output, raw arrays indexed flat (`x[j]`), scalars as constants of their
parameter's type, and the loop index `i`. The host C++ compiler builds it and the loop runs serially over i.
Calls follow CuPy's rules: non-raw arrays broadcast to one shape, `size=` only when every array is raw, a type
placeholder is bound by the output arrays then the input arrays (a mismatch is a TypeError), outputs must have
the loop's shape, missing non-raw outputs are allocated.

`simulate(monkeypatch)` gives layers.backend a stand-in CuPy (fake_cupy) with one 'GPU' whose arrays are numpy
arrays and whose kernels are these, so that Net.to_gpu, Solver.to_device and the layers' and the solver's GPU
paths run on the CPU, kernels included. `nvcc_check(kernels)` compiles the
same bodies as CUDA device code (skipped where nvcc is missing). Neither needs CuPy or a GPU.
"""
import atexit
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import types

import numpy

C_TYPES = {
    numpy.dtype(numpy.float32): ("float", ctypes.c_float),
    numpy.dtype(numpy.float64): ("double", ctypes.c_double),
    numpy.dtype(numpy.int32): ("int", ctypes.c_int32),
    numpy.dtype(numpy.int64): ("long long", ctypes.c_int64),
    numpy.dtype(numpy.uint8): ("unsigned char", ctypes.c_uint8),
    numpy.dtype(numpy.bool_): ("bool", ctypes.c_bool),
}
_HEADER = """#include <cmath>
#include <cstddef>
#include <algorithm>
using std::max; using std::min; using std::log; using std::exp; using std::sqrt; using std::fabs;
"""
_CACHE = {}
_DIR = None


def have_compiler():
    return shutil.which(os.environ.get("CXX", "g++")) is not None


class Param:
    def __init__(self, text, is_input):
        words = text.split()
        if len(words) < 2 or any(w != "raw" for w in words[:-2]):
            raise ValueError(f"cannot parse kernel parameter {text!r}")
        self.raw = "raw" in words[:-2]
        kind, self.name = words[-2:]
        self.placeholder = kind if len(kind) == 1 else None
        self.dtype = None if self.placeholder else numpy.dtype(kind)
        self.is_input = is_input


def parse(in_params, out_params):
    split = lambda s: [p for p in s.split(",") if p.strip()]
    return ([Param(p, True) for p in split(in_params)], [Param(p, False) for p in split(out_params)])


def _is_array(a):
    return isinstance(a, numpy.ndarray)


def resolve_types(params, args):
    """CuPy's _decide_params_type: outputs bind placeholders first, then inputs; scalars bind nothing."""
    bound = {}
    ordered = [(p, a) for p, a in zip(params, args) if not p.is_input] + \
              [(p, a) for p, a in zip(params, args) if p.is_input]
    for p, a in ordered:
        if not _is_array(a):
            continue
        if p.dtype is not None:
            if a.dtype != p.dtype:
                raise TypeError(f"Type is mismatched. {p.name} {a.dtype} {p.dtype}")
        elif p.placeholder in bound:
            if bound[p.placeholder] != a.dtype:
                raise TypeError(f"Type is mismatched. {p.name} {a.dtype} {bound[p.placeholder]} {p.placeholder}")
        else:
            bound[p.placeholder] = a.dtype
    types = []
    for p in params:
        if p.dtype is not None:
            types.append(p.dtype)
        elif p.placeholder in bound:
            types.append(bound[p.placeholder])
        else:
            raise TypeError(f"cannot decide the type {p.placeholder} of parameter {p.name}: no array binds it")
    return types, bound


def cpp_source(kernel, params, types, bound, scalar):
    """C++ for one kernel at these types; `scalar[k]` says whether argument k is a scalar."""
    lines = [_HEADER]
    for placeholder, dtype in sorted(bound.items()):
        lines.append(f"typedef {C_TYPES[dtype][0]} {placeholder};")
    lines.append(f'extern "C" void {kernel.name}(ptrdiff_t _n, void** _a) {{')
    per_element = []
    for k, (p, t) in enumerate(zip(params, types)):
        c = C_TYPES[t][0]
        const = "const " if p.is_input else ""
        if scalar[k]:
            lines.append(f"  const {c} {p.name} = *(const {c}*)_a[{k}];")
        elif p.raw:
            lines.append(f"  {const}{c}* {p.name} = ({const}{c}*)_a[{k}];")
        else:
            lines.append(f"  {const}{c}* _raw_{p.name} = ({const}{c}*)_a[{k}];")
            per_element.append(f"    {const}{c} &{p.name} = _raw_{p.name}[i];")
    lines.append("  for (ptrdiff_t i = 0; i < _n; ++i) {")
    lines += per_element
    lines.append("    " + kernel.operation.strip().replace("\n", "\n    ") + ";")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _build(source, name):
    global _DIR
    key = hashlib.sha1(source.encode()).hexdigest()[:16]
    if key in _CACHE:
        return getattr(_CACHE[key], name)
    if _DIR is None:
        _DIR = tempfile.mkdtemp(prefix="fcn-cuda-sim-")
        atexit.register(shutil.rmtree, _DIR, True)
    src = os.path.join(_DIR, f"{key}.cpp")
    lib = os.path.join(_DIR, f"{key}.so")
    with open(src, "w") as f:
        f.write(source)
    cmd = [os.environ.get("CXX", "g++"), "-O1", "-std=c++17", "-shared", "-fPIC", "-Wall", "-Werror",
           "-Wno-unused-variable", "-Wno-unused-but-set-variable", "-Wno-sign-compare", "-o", lib, src]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"kernel {name} does not compile:\n{done.stderr}\n--- source ---\n{source}")
    _CACHE[key] = ctypes.CDLL(lib)
    return getattr(_CACHE[key], name)


class SimKernel:
    """backend.ElementwiseKernel's source, called as CuPy calls it, run on the CPU over numpy arrays."""

    def __init__(self, in_params, out_params, operation, name, **kwargs):
        self.in_params, self.out_params, self.operation, self.name = in_params, out_params, operation, name
        self.ins, self.outs = parse(in_params, out_params)

    def __call__(self, *args, size=None):
        ins, outs = self.ins, self.outs
        params = ins + outs
        if len(args) not in (len(ins), len(params)):
            raise TypeError(f"Wrong number of arguments for {self.name!r}: {len(ins)} or {len(params)}, "
                            f"got {len(args)}")
        args = list(args) + [None] * (len(params) - len(args))
        nonraw = [a for p, a in zip(params, args) if not p.raw and _is_array(a)]
        if size is not None:
            if nonraw:
                raise ValueError("Specified 'size' can be used only if all of the ndarray are 'raw'.")
            shape = (int(size),)
        else:
            if not nonraw:
                raise ValueError("Loop size is undecided.")
            shape = numpy.broadcast_shapes(*(a.shape for p, a in zip(ins, args) if not p.raw and _is_array(a)),
                                           *(a.shape for p, a in zip(outs, args[len(ins):])
                                             if a is not None and not p.raw))
        types, bound = resolve_types(params, args)
        for k, (p, t) in enumerate(zip(outs, types[len(ins):]), len(ins)):
            if args[k] is None:
                if p.raw:
                    raise ValueError("Output array size is Undecided")
                args[k] = numpy.empty(shape, dtype=t)
            elif not _is_array(args[k]):
                raise TypeError("Output arguments type must be cupy.ndarray")
            elif not p.raw and args[k].shape != shape:
                raise ValueError("Out shape is mismatched")
        scalar = [not _is_array(a) for a in args]
        buffers, keep, copy_back = [], [], []
        for p, t, a, s in zip(params, types, args, scalar):
            if s:
                value = C_TYPES[t][1](numpy.asarray(a).astype(t).item())
                keep.append(value)
                buffers.append(ctypes.cast(ctypes.pointer(value), ctypes.c_void_p))
                continue
            if p.is_input:
                work = numpy.ascontiguousarray(a if p.raw else numpy.broadcast_to(a, shape))
            else:
                work = a if a.flags.c_contiguous else numpy.ascontiguousarray(a)
                if work is not a:
                    copy_back.append((a, work))
            keep.append(work)
            buffers.append(ctypes.c_void_p(work.ctypes.data))
        fn = _build(cpp_source(self, params, types, bound, scalar), self.name)
        fn.argtypes = [ctypes.c_ssize_t, ctypes.POINTER(ctypes.c_void_p)]
        fn(int(numpy.prod(shape)), (ctypes.c_void_p * len(buffers))(*buffers))
        for a, work in copy_back:
            a[...] = work
        results = args[len(ins):]
        return results[0] if len(results) == 1 else tuple(results)


class _Device:
    def __init__(self, device_id=0):
        self.id = device_id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        pass

    def synchronize(self):
        pass


class _MemoryPool:
    def free_all_blocks(self):
        pass

    def total_bytes(self):
        return 0

    def used_bytes(self):
        return 0


def fake_cupy():
    """A stand-in for the cupy module whose 'device arrays' are numpy arrays and whose ElementwiseKernel is
    SimKernel: every array counts as on the GPU. Anything else it is asked for is numpy's."""
    fake = types.ModuleType("cupy_simulated")
    fake.__version__ = "simulated"
    fake.ndarray = numpy.ndarray
    fake.get_array_module = lambda *arrays: numpy
    fake.asnumpy = lambda array, *args, **kwargs: numpy.asarray(array)
    fake.ElementwiseKernel = SimKernel
    fake.random = numpy.random
    fake.get_default_memory_pool = _MemoryPool
    fake.cuda = types.SimpleNamespace(Device=_Device, runtime=types.SimpleNamespace(
        getDeviceCount=lambda: 1, runtimeGetVersion=lambda: 0,
        getDeviceProperties=lambda device_id: {"name": b"simulated GPU", "totalGlobalMem": 0, "major": 0,
                                               "minor": 0}))
    fake.__getattr__ = lambda name: getattr(numpy, name)
    return fake


def simulate(monkeypatch):
    """Make layers.backend see one 'GPU' whose arrays are numpy arrays (fake_cupy) and whose kernels run on the
    CPU (SimKernel): Net.to_gpu, Solver.to_device and every layer's GPU path then run here, kernels included."""
    from layers import backend
    monkeypatch.setattr(backend, "cupy", fake_cupy())
    monkeypatch.setattr(backend, "device_count", lambda: 1)
    monkeypatch.setattr(backend, "elementwise", SimKernel)


# ------------------------------------------------------------------------------------------------ nvcc
_CUDA_HEADER = """#include <cstddef>
template <typename T> struct CArray {          // the part of CuPy's CArray that kernels use: flat indexing
  T* data_;
  __device__ T& operator[](ptrdiff_t i) const { return data_[i]; }
};
"""


def cuda_source(kernels, dtypes=("float32", "float64")):
    """CUDA C++ for every kernel at each dtype of its placeholders, laid out as CuPy lays out its kernels."""
    parts = [_CUDA_HEADER]
    for n, kernel in enumerate(kernels):
        ins, outs = parse(kernel.in_params, kernel.out_params)
        placeholders = sorted({p.placeholder for p in ins + outs if p.placeholder})
        for dtype in dtypes:
            ctype = C_TYPES[numpy.dtype(dtype)][0]
            decls, body = [], []
            for p in ins + outs:
                c = p.placeholder if p.placeholder else C_TYPES[p.dtype][0]
                const = "const " if p.is_input else ""
                if p.raw:
                    decls.append(f"{const}CArray<{c}> {p.name}")
                else:
                    decls.append(f"CArray<{c}> _raw_{p.name}")
                    body.append(f"    {const}{c} &{p.name} = _raw_{p.name}[i];")
            parts.append(f"namespace k{n}_{dtype} {{")
            parts += [f"typedef {ctype} {ph};" for ph in placeholders]
            parts.append(f"__global__ void {kernel.name}({', '.join(decls)}, const ptrdiff_t _n) {{")
            parts.append("  for (ptrdiff_t i = (ptrdiff_t)blockIdx.x * blockDim.x + threadIdx.x; i < _n; "
                         "i += (ptrdiff_t)blockDim.x * gridDim.x) {")
            parts += body
            parts.append("    " + kernel.operation.strip().replace("\n", "\n    ") + ";")
            parts.append("  }\n}\n}")
    return "\n".join(parts) + "\n"


def nvcc():
    found = shutil.which("nvcc")
    if found is None and os.path.exists("/usr/local/cuda/bin/nvcc"):
        found = "/usr/local/cuda/bin/nvcc"
    return found


def nvcc_check(kernels, arch="sm_90"):
    """Compile the kernels as CUDA device code; returns nvcc's (returncode, output)."""
    with tempfile.TemporaryDirectory(prefix="fcn-nvcc-") as folder:
        src = os.path.join(folder, "kernels.cu")
        with open(src, "w") as f:
            f.write(cuda_source(kernels))
        done = subprocess.run([nvcc(), "-c", "-std=c++17", f"-arch={arch}", "-Werror", "all-warnings",
                               "-o", os.path.join(folder, "kernels.o"), src], capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr
