"""THE convolution dispatch: one ordered strategy list and one group loop, for numpy and CuPy arrays.

    forward(x, w, b, out, geom)        out (N, M, OH, OW)  = x (N, C, H, W) * w (M, C/G, kh, kw) + b (M,) or None
    data_grad(dy, w, dx, geom)         dx (N, C, H, W)     = the input gradient, from dy (N, M, OH, OW) (assigned)
    weight_grad(x, dy, dw, geom)       dw (M, C/G, kh, kw) += the weight gradient (accumulated, as Caffe's)

Each call takes the first strategy in STRATEGIES whose `applies(op, geom, x, w, y)` says yes (x, w, y being the
input, weight and output of the convolution whatever the operation), or the one named by `strategy=` (which
must `support` the call: tests and the benchmark profile force strategies so). Strategies marked ALL_GROUPS get
the whole arrays; the others get one group's views at a time, from the loop in _run, the only group loop.
Deconvolution is the same three calls with the roles swapped (layers/deconvolution.py)."""
import contextlib
import importlib

from layers.kernels.threads import POOL

# first match wins: the CPU's special cases, then the CPU's general case, then the GPU's, then the reference
STRATEGIES = ("depthwise", "whole_batch", "pointwise", "winograd", "taps", "cells", "columns", "winograd_gpu",
              "im2col_gemm")
REFERENCE = "im2col_gemm"
OPERATIONS = ("forward", "data_grad", "weight_grad")
_MODULES = {name: importlib.import_module(f"layers.kernels.{name}") for name in STRATEGIES}
# the CPU strategies share their work out on the pool's threads (with BLAS single-threaded meanwhile); the GPU's and
# the reference leave BLAS its own threads
_POOLED = set(STRATEGIES) - {"winograd_gpu", "im2col_gemm"}


def strategy_module(name):
    """The module layers.kernels.<name>."""
    if name not in _MODULES:
        raise ValueError(f"unknown convolution strategy {name!r}; known: {', '.join(STRATEGIES)}")
    return _MODULES[name]


def choose(op, geom, x, w, y, strategy=None):
    """The name of the strategy that computes `op` for these arrays (or check that the forced one can)."""
    if strategy is not None:
        if not strategy_module(strategy).supports(op, geom, x, w, y):
            raise ValueError(f"convolution strategy {strategy!r} does not support {op} with {geom} on "
                             f"{type(x).__module__} arrays {x.shape} -> {y.shape} ({x.dtype})")
        return strategy
    return next(name for name in STRATEGIES if strategy_module(name).applies(op, geom, x, w, y))


def forward(x, w, b, out, geom, strategy=None):
    """out = the convolution of x with w, + b; returns out."""
    name = choose("forward", geom, x, w, out, strategy)
    _run(name, "forward", geom, x=x, w=w, b=b, y=out)
    return out


def data_grad(dy, w, dx, geom, strategy=None):
    """dx = the input gradient of the convolution, from the output gradient dy; returns dx."""
    name = choose("data_grad", geom, dx, w, dy, strategy)
    _run(name, "data_grad", geom, x=dx, w=w, y=dy)
    return dx


def weight_grad(x, dy, dw, geom, strategy=None):
    """dw += the weight gradient of the convolution x -> dy; returns dw."""
    name = choose("weight_grad", geom, x, dw, dy, strategy)
    _run(name, "weight_grad", geom, x=x, w=dw, y=dy)
    return dw


def _call(module, op, geom, x, w, b, y):
    if op == "forward":
        return module.forward(x, w, b, y, geom)
    if op == "data_grad":
        return module.data_grad(y, w, x, geom)
    return module.weight_grad(x, y, w, geom)


def _run(name, op, geom, x, w, y, b=None):
    """Run strategy `name` once on the whole arrays, or once per group on views."""
    module = strategy_module(name)
    with POOL if name in _POOLED else contextlib.nullcontext():
        if getattr(module, "ALL_GROUPS", False) or geom.group == 1:
            return _call(module, op, geom, x, w, b, y)
        g = geom.group
        cg, mg = x.shape[1] // g, y.shape[1] // g
        for i in range(g):
            _call(module, op, geom, x[:, i * cg:(i + 1) * cg], w[i * mg:(i + 1) * mg],
                  None if b is None else b[i * mg:(i + 1) * mg], y[:, i * mg:(i + 1) * mg])
