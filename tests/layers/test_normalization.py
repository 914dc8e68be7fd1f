"""BatchNorm and MVN: closed-form values, the running statistics, numerical gradient checks, and BatchNorm's
blobs under every solver (only the layer's moving average may move them). test_golden.py compares both with
Caffe."""
import numpy
import pytest

from layers import Blob, Net
from solver import get_solver
from tests.gradient_check import check_layer_gradient, make_layer, run_layer
from tests.solver import tiny

rng = numpy.random.default_rng(3)


def batch_norm(params="", phase="TRAIN", top="y", blobs=None):
    layer = make_layer(f'name: "bn" type: "BatchNorm" bottom: "x" top: "{top}" {params}', phase=phase)
    for value in blobs or []:                     # statistics given before setup, as copied weights are
        blob = Blob(*numpy.shape(value), dtype=numpy.float64)
        blob.data[...] = value
        layer.blobs.append(blob)
    return layer


def run(layer, x, in_place=False):
    (bottom,), (top,) = run_layer(layer, x, in_place=in_place)
    return bottom, top


def stats(x):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x.mean(axis=axes).reshape(shape), x.var(axis=axes).reshape(shape), x.size // x.shape[1]


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (6, 5), (3, 2, 7)])
def test_train_normalizes_by_the_batch_and_updates_the_statistics(shape):
    x = rng.normal(1.5, 2.0, size=shape)
    layer = batch_norm("batch_norm_param { moving_average_fraction: 0.9 eps: 1e-4 }")
    _, top = run(layer, x)
    mean, var, m = stats(x)
    numpy.testing.assert_allclose(top.data, (x - mean) / numpy.sqrt(var + 1e-4), rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(layer.blobs[0].data, mean.ravel(), rtol=1e-12)           # 0.9 * 0 + mean
    numpy.testing.assert_allclose(layer.blobs[1].data, var.ravel() * m / (m - 1), rtol=1e-12)
    assert layer.blobs[2].data.tolist() == [1.0]
    x2 = rng.normal(size=shape)
    layer.run_forward([Blob(*shape, dtype=numpy.float64)], [top])                          # a batch of zeros
    maf = numpy.float32(0.9)                      # the proto's float, as Caffe reads it
    numpy.testing.assert_allclose(layer.blobs[0].data, maf * mean.ravel(), rtol=1e-12)
    numpy.testing.assert_allclose(layer.blobs[2].data, [maf + 1], rtol=1e-12)
    check_layer_gradient(batch_norm(), [x2], check_params=False)


def test_global_stats_use_the_stored_statistics_divided_by_the_factor():
    x = rng.normal(size=(2, 3, 4, 5))
    mean, var, factor = rng.normal(size=3), rng.uniform(0.5, 3, size=3), 1.7
    layer = batch_norm("batch_norm_param { eps: 1e-3 }", phase="TEST", blobs=[mean, var, [factor]])
    _, top = run(layer, x)
    eps = float(numpy.float32(1e-3))
    expected = (x - (mean / factor)[:, None, None]) / numpy.sqrt(var / factor + eps)[:, None, None]
    numpy.testing.assert_allclose(top.data, expected, rtol=1e-10)
    assert layer.blobs[2].data.tolist() == [factor]                   # TEST leaves the statistics alone
    check_layer_gradient(batch_norm("batch_norm_param { eps: 1e-3 }", "TEST", blobs=[mean, var, [factor]]), [x],
                         check_params=False)
    zero = batch_norm("batch_norm_param { use_global_stats: true }", blobs=[mean, var, [0.0]])
    _, top = run(zero, x)                        # factor 0: Caffe uses 0 for mean and variance
    numpy.testing.assert_allclose(top.data, x / numpy.sqrt(float(numpy.float32(1e-5))), rtol=1e-10)


def test_use_global_stats_defaults_by_phase_and_can_be_forced():
    x = rng.normal(size=(4, 3))
    for phase, params, global_stats in [("TRAIN", "", False), ("TEST", "", True),
                                        ("TEST", "batch_norm_param { use_global_stats: false }", False),
                                        ("TRAIN", "batch_norm_param { use_global_stats: true }", True)]:
        layer = batch_norm(params, phase=phase)
        run(layer, x)
        assert layer.use_global_stats is global_stats
        assert layer.blobs[2].data.tolist() == ([0.0] if global_stats else [1.0])


def test_in_place_gives_the_same_numbers():
    x, dy = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
    results = []
    for in_place in (False, True):
        layer = batch_norm(top="x" if in_place else "y")
        bottom, top = run(layer, x, in_place)
        y = top.data.copy()
        top.diff[...] = dy
        layer.run_backward([top], [True], [bottom])
        results.append((y, bottom.diff.copy()))
    for apart, together in zip(*results):
        numpy.testing.assert_allclose(together, apart, rtol=1e-12)


def test_statistics_are_pinned_at_lr_mult_0():
    net = Net("""force_backward: true
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 } } }
        layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
        layer { name: "old" type: "BatchNorm" bottom: "x" top: "z"
                param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 } }""", phase="TRAIN")
    assert net.params_lr == [0.0] * 6                   # added by setup; the old 3-spec form upgraded
    assert [spec.lr_mult for spec in net.layer_dict["bn"].param.param] == [0, 0, 0]
    assert net.layer_dict["bn"].param_propagate_down == [True] * 3      # force_backward, as Caffe; no diffs
    net.forward(x=rng.normal(size=(2, 3, 4)))
    net.backward(z=rng.normal(size=(2, 3, 4)))
    assert all(not blob.diff.any() for blob in net.params["bn"] + net.params["old"])
    with pytest.raises(ValueError, match=r"BatchNorm layer 'bn': param 0 has lr_mult 1: the mean, variance"):
        Net("""layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
               layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" param { lr_mult: 1 } }""")


def test_channels_must_not_change():
    layer = batch_norm()
    bottom, top = run(layer, rng.normal(size=(2, 3, 4)))
    bottom.reshape(2, 5, 4)
    with pytest.raises(ValueError, match=r"BatchNorm layer 'bn': bottom \(2, 5, 4\) has 5 channels, the "
                                         r"statistics 3"):
        layer.run_forward([bottom], [top])


NET = tiny.NET.replace('bottom: "data" top: "ip"', 'bottom: "h" top: "ip"').replace('layer { name: "ip" ', """\
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "h"
        inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "bn" type: "BatchNorm" bottom: "h" top: "h" batch_norm_param { moving_average_fraction: 0.5 } }
layer { name: "scale" type: "Scale" bottom: "h" top: "h" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
layer { name: "ip" """)


@pytest.mark.parametrize("kind,extra", [("SGD", {}), ("Nesterov", {}), ("AdaGrad", {"momentum": 0}),
                                        ("RMSProp", {"momentum": 0}), ("AdaDelta", {"base_lr": 1.0}),
                                        ("Adam", {"momentum2": 0.999}),
                                        ("SGD", {"regularization_type": '"L1"', "clip_gradients": 0.1})])
def test_no_solver_moves_the_statistics(tmp_path, kind, extra):
    """Weight decay and momentum act on every learnable param, but with lr_mult 0 the update is 0: the blobs
    after each step are those the step's forward left (its moving average), and the test net reads them."""
    overrides = dict(type=f'"{kind}"', weight_decay=0.5, max_iter=4, test_interval=2, snapshot_prefix=None)
    solver = get_solver(tiny.make_tiny(tmp_path, net=NET, **dict(overrides, **extra)))
    bn, seen = solver.net.params["bn"], []
    solver.add_callback(lambda s: seen.append([b.data.copy() for b in bn]), "gradients_ready")
    weights = solver.net.params["ip1"][0].data.copy()
    for step in range(3):
        solver.step(1)
        for blob, before in zip(bn, seen[-1]):
            numpy.testing.assert_array_equal(blob.data, before)
    assert not numpy.array_equal(seen[0][0], seen[-1][0])                     # the moving average did run
    numpy.testing.assert_allclose(bn[2].data, [1 + 0.5 * (1 + 0.5)])           # 3 forwards, maf 0.5
    assert not numpy.array_equal(weights, solver.net.params["ip1"][0].data)   # the other params learn
    test_bn = solver.test_nets[0].layer_dict["bn"]
    assert test_bn.use_global_stats and solver.test_nets[0].params["bn"][0] is not None
    solver.test(0)
    for blob, trained in zip(solver.test_nets[0].params["bn"], bn):
        numpy.testing.assert_array_equal(blob.data, trained.data)


def mvn(params=""):
    return make_layer(f'name: "mvn" type: "MVN" bottom: "x" top: "y" {params}')


@pytest.mark.parametrize("params,axes", [("", (2, 3)), ("mvn_param { across_channels: true }", (1, 2, 3)),
                                         ("mvn_param { eps: 0.001 }", (2, 3)),
                                         ("mvn_param { normalize_variance: false }", (2, 3))])
def test_mvn(params, axes):
    x = rng.normal(0.5, 2, size=(2, 3, 4, 5))
    _, top = run(mvn(params), x)
    y = x - x.mean(axis=axes, keepdims=True)
    if "normalize_variance" not in params:
        eps = numpy.float32(0.001) if "eps" in params else numpy.float32(1e-9)
        y /= numpy.sqrt(x.var(axis=axes, keepdims=True)) + eps
    numpy.testing.assert_allclose(top.data, y, rtol=1e-10, atol=1e-12)
    # Caffe's backward leaves eps out of the derivative of the standard deviation: check it at the default eps
    if "eps" not in params:
        check_layer_gradient(mvn(params), [x])


def test_mvn_on_2d_and_3d_bottoms():
    check_layer_gradient(mvn("mvn_param { across_channels: true }"), [rng.normal(size=(3, 6))])
    check_layer_gradient(mvn(), [rng.normal(size=(2, 3, 6))])
