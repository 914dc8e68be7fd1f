"""The hand-written GPU kernels against their numpy twins, the twins being the oracles.

Each test runs two ways: 'sim', the kernel's CUDA source compiled for the CPU by tests/cuda_sim.py (every machine
with a C++ compiler: this is what checks the kernels where no GPU exists), and 'gpu', through CuPy on a CUDA
device (-m gpu). Copies (im2col, pooling) and gathers in the twin's order (col2im, the pooling backward, the
loss gradient) must match exactly; sums and logarithms to float32 rounding. nvcc, where it exists, also compiles
every kernel as CUDA device code, which catches what a host compiler accepts and a GPU does not.
"""
import importlib

import numpy
import pytest

from layers import backend
from layers.kernels.geometry import ConvGeometry
from layers.kernels.im2col import col2im, col2im_gpu, im2col, im2col_gpu
from layers.pooling import max_pool_backward_gpu, max_pool_forward_gpu
from layers.softmax_with_loss import softmax_loss_backward_gpu, softmax_loss_forward_gpu
from solver import sgd
from tests import cuda_sim
from tests.gradient_check import make_layer, run_layer

rng = numpy.random.default_rng(8)


# (N, C, H, W, kernel, stride, pad, dilation)
GEOMETRIES = [
    (2, 3, 7, 8, (3, 3), (1, 1), (1, 1), (1, 1)),          # VGG's 3x3 pad 1
    (1, 2, 5, 6, (3, 3), (1, 1), (100, 100), (1, 1)),      # FCN's conv1_1: pad far beyond the input
    (1, 4, 9, 11, (3, 5), (2, 1), (1, 2), (1, 1)),         # rectangular, strided
    (1, 3, 11, 10, (3, 3), (1, 2), (2, 2), (2, 2)),        # dilation
    (2, 2, 9, 9, (7, 7), (1, 1), (0, 0), (1, 1)),          # fc6 as a convolution
    (1, 5, 8, 10, (4, 4), (2, 2), (0, 0), (1, 1)),         # upscore2 (a deconvolution's im2col of its top)
    (1, 2, 32, 24, (16, 16), (8, 8), (0, 0), (1, 1)),      # upscore8's 16x16 stride 8
    (1, 2, 70, 66, (64, 64), (32, 32), (3, 5), (1, 1)),    # upscore's 64x64 stride 32, padded, rows no window meets
    (1, 2, 11, 13, (4, 3), (2, 3), (1, 2), (1, 1)),        # the stride divides a rectangular kernel
]
IDS = [f"k{g[4][0]}x{g[4][1]}s{g[5][0]}p{g[6][0]}d{g[7][0]}" for g in GEOMETRIES]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_im2col_kernel_copies_as_the_twin(run, geometry, dtype):
    n, c, h, w, kernel, stride, pad, dilation = geometry
    x = rng.normal(size=(n, c, h, w)).astype(dtype)
    geom = ConvGeometry(kernel, stride, pad, dilation)
    expected = im2col(x, geom)
    _, col = run(lambda a: im2col_gpu(a, geom), x)
    assert col.dtype == dtype and col.shape == expected.shape
    numpy.testing.assert_array_equal(col, expected)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_col2im_kernel_sums_as_the_twin(run, geometry, dtype):
    n, c, h, w, kernel, stride, pad, dilation = geometry
    geom = ConvGeometry(kernel, stride, pad, dilation)
    oh, ow = geom.out_size(h, w)
    col = rng.normal(size=(n, c, *kernel, oh, ow)).astype(dtype)
    expected = col2im(col, h, w, geom)
    out = numpy.full((n, c, h, w), numpy.nan, dtype=dtype)          # every cell must be written
    (_, out), _ = run(lambda a, o: col2im_gpu(a, h, w, geom, out=o), col, out)
    numpy.testing.assert_array_equal(out, expected)                # same taps, same order: same rounding


POOLS = [  # (N, C, H, W, kernel, stride, pad)
    (2, 3, 8, 10, 2, 2, 0),        # VGG/FCN's 2x2 stride 2
    (1, 2, 7, 9, 2, 2, 0),         # odd sizes: ceil mode clips the last windows
    (2, 2, 9, 7, 3, 2, 1),         # overlapping windows with padding
    (1, 3, 6, 6, 3, 1, 1),
    (1, 1, 5, 5, 5, 1, 2),         # one window holds all (padding never wins)
]


def pool_layer(kernel, stride, pad):
    return make_layer(f'name: "pool" type: "Pooling" bottom: "x" top: "y" '
                      f'pooling_param {{ pool: MAX kernel_size: {kernel} stride: {stride} pad: {pad} }}')


@pytest.mark.parametrize("case", POOLS, ids=[f"k{p[4]}s{p[5]}p{p[6]}" for p in POOLS])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_kernels_match_the_twin(run, case, ties):
    n, c, h, w, k, s, p = case
    x = (rng.integers(-2, 3, size=(n, c, h, w)) if ties else rng.permutation(n * c * h * w).reshape(n, c, h, w))
    x = x.astype(numpy.float32)
    layer = pool_layer(k, s, p)
    bottoms, tops = run_layer(layer, x)                          # the twin, on the CPU
    dy = rng.normal(size=tops[0].shape).astype(numpy.float32)
    tops[0].diff[...] = dy
    layer.backward(tops, [True], bottoms)
    y = numpy.empty(tops[0].shape, numpy.float32)
    arg = numpy.empty(tops[0].shape, numpy.int32)
    (_, y, arg), _ = run(lambda a, b, m: max_pool_forward_gpu(a, b, m, (k, k), (s, s), (p, p)), x, y, arg)
    numpy.testing.assert_array_equal(y, tops[0].data)
    numpy.testing.assert_array_equal(arg, layer.argmax)           # the same tap wins, ties included
    dx = numpy.full(x.shape, numpy.nan, numpy.float32)
    (_, _, dx), _ = run(lambda g, m, o: max_pool_backward_gpu(g, m, o, (k, k), (s, s), (p, p)), dy, arg, dx)
    numpy.testing.assert_array_equal(dx, bottoms[0].diff)


LOSS = """name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
          loss_param {{ {loss} }}"""


@pytest.mark.parametrize("loss", ["ignore_label: 255 normalize: false", "ignore_label: 255",
                                  "normalization: FULL", ""])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_softmax_loss_kernels_match_the_twin(run, loss, dtype):
    scores = (rng.normal(size=(2, 5, 3, 4)) * 3).astype(dtype)
    label = rng.integers(0, 5, size=(2, 1, 3, 4)).astype(dtype)
    if "ignore_label" in loss:
        label[rng.random(label.shape) < 0.3] = 255
    layer = make_layer(LOSS.format(loss=loss))
    bottoms, tops = run_layer(layer, scores, label)
    tops[0].diff[...] = 1.5                                      # a loss weight
    layer.backward(tops, [True, False], bottoms)
    ignore = layer.ignore_label
    prob = layer.prob
    _, (loss_sum, valid, bad) = run(lambda p, l: softmax_loss_forward_gpu(p, l, ignore), prob, label)
    assert bad == 0 and valid == layer.valid_count
    normalizer = layer._normalizer(valid)
    assert loss_sum / normalizer == pytest.approx(float(tops[0].data), rel=1e-6)
    scale = numpy.asarray(float(tops[0].diff) / normalizer, dtype=dtype)
    grad = numpy.full(prob.shape, numpy.nan, dtype)
    (_, _, _, grad), _ = run(lambda p, l, s, g: softmax_loss_backward_gpu(p, l, s, ignore, g), prob, label, scale,
                             grad)
    numpy.testing.assert_array_equal(grad, bottoms[0].diff.reshape(prob.shape))


def test_softmax_loss_kernel_counts_labels_out_of_range(run):
    prob = numpy.full((1, 3, 4), 1 / 3, numpy.float32)
    label = numpy.array([0, 2, 3, 255], numpy.float32)
    _, (_, valid, bad) = run(lambda p, l: softmax_loss_forward_gpu(p, l, 255), prob, label)
    assert (valid, bad) == (2, 1)
    _, (_, valid, bad) = run(lambda p, l: softmax_loss_forward_gpu(p, l, None), prob, label)
    assert (valid, bad) == (2, 2)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_sgd_update_kernel_matches_the_solver_arithmetic(run, dtype):
    data, diff, history = (rng.normal(size=(7, 9)).astype(dtype) for _ in range(3))
    t = numpy.dtype(dtype).type
    momentum, rate, decay = t(numpy.float32(0.99)), t(numpy.float32(1e-3)), t(numpy.float32(5e-4))
    # the twin: Update.regularize (L2), SGD.compute, then Update.apply's data -= diff (solver/update.py, sgd.py)
    d, g, h = data.copy(), diff.copy(), history.copy()
    g += decay * d
    h *= momentum
    h += rate * g
    g[...] = h
    d -= g
    (_, _, _, data, diff, history), _ = run(sgd._sgd_update, momentum, rate, decay, data, diff, history)
    for have, want in ((data, d), (diff, g), (history, h)):
        numpy.testing.assert_allclose(have, want, rtol=1e-6 if dtype == numpy.float32 else 1e-14, atol=0)


def all_kernels():
    """Every kernel: they are defined when their modules are imported (all of them, by now)."""
    for module in ("layers", "solver.sgd"):
        importlib.import_module(module)
    return list(backend.KERNELS)


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_relu_backward_kernel_matches_the_twin(run, slope):
    from layers import relu
    layer = make_layer(f'name: "relu" type: "ReLU" bottom: "x" top: "x" relu_param {{ negative_slope: {slope} }}')
    x = rng.normal(size=(2, 3, 5, 4)).astype(numpy.float32)
    x[0, 0, 0, :2] = 0                                              # the boundary: x = 0 takes the slope
    dy = rng.normal(size=x.shape).astype(numpy.float32)
    want = numpy.empty_like(dy)
    layer.negative_slope = slope
    layer._gradient(numpy, x, dy, want)
    (_, _, _, got), _ = run(lambda a, g, s, o: relu._relu_bwd(a, g, s, o), x, dy, numpy.float32(slope), dy.copy())
    numpy.testing.assert_array_equal(got, want)


def test_every_kernel_is_tested_here():
    tested = {"fcn_im2col", "fcn_col2im", "fcn_max_pool_fwd", "fcn_max_pool_bwd", "fcn_softmax_loss_fwd",
              "fcn_softmax_loss_bwd", "fcn_sgd_update", "fcn_relu_bwd",
              # tests/layers/kernels/test_winograd_gpu.py
              "fcn_winograd_input", "fcn_winograd_output", "fcn_winograd_grad_output", "fcn_winograd_grad_input",
              "fcn_winograd_gather_input"}
    assert {k.name for k in all_kernels()} == tested


@pytest.mark.skipif(cuda_sim.nvcc() is None, reason="needs nvcc (CUDA's compiler) to check the device code")
def test_every_kernel_compiles_as_cuda_device_code():
    code, output = cuda_sim.nvcc_check(all_kernels())
    assert code == 0, output


def test_the_simulator_follows_cupys_calling_rules():
    square = cuda_sim.SimKernel("T x, T y", "T z", "z = (x - y) * (x - y)", "sq")
    x = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
    numpy.testing.assert_array_equal(square(x, numpy.float32(1)), (x - 1) ** 2)         # broadcast scalar
    numpy.testing.assert_array_equal(square(x, x[0]), (x - x[0]) ** 2)                # broadcast row
    with pytest.raises(TypeError, match="mismatched"):
        square(x, x.astype(numpy.float64))
    with pytest.raises(ValueError, match="Out shape"):
        square(x, x, numpy.empty(3, numpy.float32))
    gather = cuda_sim.SimKernel("raw T x, int32 step", "T y", "y = x[i * step]", "gather")
    numpy.testing.assert_array_equal(gather(x.T, 2, numpy.empty(3, numpy.float32)), x.T.ravel()[::2])
    with pytest.raises(ValueError, match="undecided"):
        gather(x, 1)
