"""The GPU's Winograd F(2x2, 3x3) convolution (layers/kernels/winograd_gpu.py): each kernel against its numpy twin
('sim': the CUDA source compiled for the CPU; 'gpu': CuPy on a device), the twins together against a direct
convolution and its gradients, and the Convolution layer's GPU path (which takes it for 3x3 layers with many
channels) against the CPU path, forward, bottom diff and param diffs."""
import numpy
import pytest

from layers import Blob, backend
from layers.kernels import winograd_gpu
from tests import cuda_sim
from tests.conftest import gpu
from tests.golden import assert_close
from tests.gradient_check import make_layer, run_layer

rng = numpy.random.default_rng(31)

# (N, C, M, H, W, pad): odd and even maps, VGG's pad 1, no pad, a pad wider than a tile
SHAPES = [(2, 3, 4, 7, 9, 1), (1, 2, 3, 8, 6, 1), (1, 3, 2, 6, 5, 0), (2, 2, 2, 5, 4, 2), (1, 1, 1, 3, 3, 1)]
IDS = [f"n{s[0]}c{s[1]}m{s[2]}_{s[3]}x{s[4]}p{s[5]}" for s in SHAPES]


def direct_conv(x, w, pad):
    """float64 reference: y[n, m] = sum_c,i,j w[m, c, i, j] x_padded[n, c, y + i, x + j]."""
    n, c, h, wd = x.shape
    xp_ = numpy.pad(x.astype(numpy.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - 2, wd + 2 * pad - 2
    y = numpy.zeros((n, w.shape[0], oh, ow))
    for i in range(3):
        for j in range(3):
            y += numpy.einsum("mc,nchw->nmhw", w[:, :, i, j], xp_[:, :, i:i + oh, j:j + ow])
    return y


def shapes(case):
    n, c, m, h, w, pad = case
    return (n, c, h, w), (n, m, h + 2 * pad - 2, w + 2 * pad - 2), (pad, pad)


@pytest.mark.parametrize("case", SHAPES, ids=IDS)
def test_twins_compute_the_convolution_and_its_gradients(case):
    x_shape, y_shape, pad = shapes(case)
    x = rng.normal(size=x_shape)
    w = rng.normal(size=(y_shape[1], x_shape[1], 3, 3))
    b = rng.normal(size=y_shape[1])
    v = winograd_gpu.input_transform_twin(x, pad, y_shape)
    u = winograd_gpu.transform_weights(w)
    y = winograd_gpu.output_transform_twin(numpy.matmul(u, v), b, y_shape)
    numpy.testing.assert_allclose(y, direct_conv(x, w, pad[0]) + b.reshape(1, -1, 1, 1), rtol=1e-10, atol=1e-10)
    # gradients of L = sum(y * dy): the adjoint steps against the direct convolution's
    dy = rng.normal(size=y_shape)
    dp = winograd_gpu.grad_output_transform_twin(dy, y_shape)
    dw = winograd_gpu.weight_gradient(numpy.matmul(dp, v.transpose(0, 2, 1)), w.shape)
    dx = winograd_gpu.grad_input_twin(numpy.matmul(u.transpose(0, 2, 1), dp), x_shape, pad, y_shape)
    xpad = numpy.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh, ow = y_shape[2:]
    want_dw = numpy.stack([numpy.stack([numpy.einsum("nmhw,nchw->mc", dy, xpad[:, :, i:i + oh, j:j + ow])
                                        for j in range(3)], -1) for i in range(3)], -2)
    numpy.testing.assert_allclose(dw, want_dw, rtol=1e-10, atol=1e-10)
    want_dx = numpy.zeros_like(xpad)
    for i in range(3):
        for j in range(3):
            want_dx[:, :, i:i + oh, j:j + ow] += numpy.einsum("mc,nmhw->nchw", w[:, :, i, j], dy)
    numpy.testing.assert_allclose(dx, want_dx[:, :, pad[0]:pad[0] + x_shape[2], pad[1]:pad[1] + x_shape[3]],
                                  rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", SHAPES, ids=IDS)
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_kernels_match_their_twins(run, case, dtype):
    x_shape, y_shape, pad = shapes(case)
    th, tw, tiles = winograd_gpu._tiles(y_shape)
    x = rng.normal(size=x_shape).astype(dtype)
    _, v = run(lambda a: winograd_gpu.input_transform(a, pad, y_shape), x)
    numpy.testing.assert_array_equal(v, winograd_gpu.input_transform_twin(x, pad, y_shape))    # same adds

    m = y_shape[1]
    prod = rng.normal(size=(16, m, tiles)).astype(dtype)
    bias = rng.normal(size=m).astype(dtype)
    y = numpy.full(y_shape, numpy.nan, dtype=dtype)                  # every output must be written
    (_, _, y), _ = run(lambda p, b_, o: winograd_gpu._output_transform(
        p, b_, True, m, y_shape[2], y_shape[3], th, tw, tiles, o, size=m * tiles), prod, bias, y)
    numpy.testing.assert_allclose(y, winograd_gpu.output_transform_twin(prod, bias, y_shape), rtol=1e-6)

    dy = rng.normal(size=y_shape).astype(dtype)
    dp = numpy.full((16, m, tiles), numpy.nan, dtype=dtype)
    (_, dp), _ = run(lambda g, o: winograd_gpu._grad_output_transform(
        g, m, y_shape[2], y_shape[3], th, tw, tiles, o, size=m * tiles), dy, dp)
    numpy.testing.assert_array_equal(dp, winograd_gpu.grad_output_transform_twin(dy, y_shape))

    c = x_shape[1]
    dv = rng.normal(size=(16, c, tiles)).astype(dtype)
    dx = numpy.full(x_shape, numpy.nan, dtype=dtype)

    def grad_input(d, o):
        winograd_gpu._grad_input_transform(c, tiles, d, size=c * tiles)
        winograd_gpu._gather_input(d, c, x_shape[2], x_shape[3], th, tw, tiles, *pad, o, size=o.size)
    (_, dx), _ = run(grad_input, dv.copy(), dx)
    numpy.testing.assert_allclose(dx, winograd_gpu.grad_input_twin(dv, x_shape, pad, y_shape), rtol=1e-6,
                                  atol=1e-6 * numpy.abs(dv).max())


def test_applies_to_vggs_layers_only():
    def applies(kernel=(3, 3), stride=(1, 1), dilation=(1, 1), group=1, c=64, m=64, n=1, h=40):
        return winograd_gpu.fits(kernel, stride, dilation, group, c, m, (n, c, h, h), (n, m, h, h))
    assert applies()
    assert not applies(kernel=(7, 7)) and not applies(stride=(2, 2)) and not applies(dilation=(2, 2))
    assert not applies(group=2) and not applies(c=3) and not applies(m=21)
    assert not applies(n=64, c=512, m=512, h=1000)          # past the kernels' 32-bit indices


LAYER = ('name: "conv" type: "Convolution" bottom: "x" top: "y" convolution_param {{ num_output: {m} '
         'kernel_size: 3 pad: {pad} bias_term: {bias} weight_filler {{ type: "gaussian" std: 0.1 }} '
         'bias_filler {{ type: "gaussian" std: 0.5 }} }}')


@pytest.fixture(params=["sim", pytest.param("gpu", marks=gpu)])
def device(request, monkeypatch):
    if request.param == "sim":
        if not cuda_sim.have_compiler():
            pytest.skip("needs a C++ compiler (g++) to run the kernels' source on the CPU")
        cuda_sim.simulate(monkeypatch)
    return request.param


@pytest.mark.parametrize("n, c, m, h, w, pad, bias", [(2, 32, 40, 9, 8, 1, "true"), (1, 48, 32, 6, 7, 0, "false")])
def test_layer_takes_the_fast_path_and_matches_the_cpu(device, monkeypatch, n, c, m, h, w, pad, bias):
    text = LAYER.format(m=m, pad=pad, bias=bias)
    x = rng.normal(size=(n, c, h, w)).astype(numpy.float32)
    ref_layer = make_layer(text, phase="TRAIN")
    with monkeypatch.context() as cpu:               # the reference on the real CPU path
        cpu.setattr(backend, "cupy", None)
        cpu.setattr(backend, "device_count", lambda: 0)
        bottoms, tops = run_layer(ref_layer, x)
        dy = rng.normal(size=tops[0].shape).astype(numpy.float32)
        tops[0].diff[...] = dy
        ref_layer.param_propagate_down = [True] * len(ref_layer.blobs)
        ref_layer.backward(tops, [True], bottoms)
    layer = make_layer(text, phase="TRAIN")
    calls = []
    monkeypatch.setattr(winograd_gpu, "forward", lambda *a, _f=winograd_gpu.forward: calls.append("f") or _f(*a))
    gbottoms, gtops = [Blob(*x.shape)], [Blob()]
    gbottoms[0].data[...] = x
    layer.run_setup(gbottoms, gtops)
    for blob, ref in zip(layer.blobs, ref_layer.blobs):
        blob.data[...] = ref.data
    for blob in gbottoms + gtops + layer.blobs:
        blob.to_gpu()
    layer.run_forward(gbottoms, gtops)
    gtops[0].diff[...] = gtops[0].xp.asarray(dy)
    for blob in layer.blobs:
        blob.diff[...] = 0
    layer.param_propagate_down = [True] * len(layer.blobs)
    layer.run_backward(gtops, [True], gbottoms)
    assert calls == ["f"], "the 3x3 layer with many channels did not take the Winograd path"
    assert_close(gtops[0].data, tops[0].data, "forward", "forward")
    assert_close(gbottoms[0].diff, bottoms[0].diff, "bottom diff", "gradient")
    for got, want in zip(layer.blobs, ref_layer.blobs):
        assert_close(got.diff, want.diff, "param diff", "gradient")
