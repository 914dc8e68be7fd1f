"""AbsVal, BNLL, Clip, ELU, PReLU, Sigmoid, TanH and Swish: closed-form forward values, numerical gradient checks
over their parameters, in-place runs and Caffe's parameter checks (test_golden.py compares each against Caffe)."""
import numpy
import pytest

from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(11)


def away_from(*points, shape=(2, 3, 4, 5), scale=2.0, gap=0.05):
    """Inputs at least `gap` from each point where the derivative jumps."""
    x = rng.normal(scale=scale, size=shape)
    for p in points:
        near = numpy.abs(x - p) < gap
        x[near] = p + numpy.where(x[near] >= p, gap, -gap) * 2
    return x


def neuron(kind, params="", top="y"):
    return make_layer(f'name: "n" type: "{kind}" bottom: "x" top: "{top}" {params}')


def forward(layer, x, in_place=False):
    (bottom,), (top,) = run_layer(layer, x, in_place=in_place)
    return bottom, top


def sig(x):
    return 1 / (1 + numpy.exp(-x))


CASES = [   # (type, params, f(x), input)
    ("AbsVal", "", numpy.abs, away_from(0)),
    ("BNLL", "", lambda x: numpy.log1p(numpy.exp(x)), away_from(shape=(2, 3, 4, 5), scale=3)),
    ("Clip", "clip_param { min: 0 max: 6 }", lambda x: numpy.clip(x, 0, 6), away_from(0, 6, scale=4)),
    ("Clip", "clip_param { min: -0.5 max: 1.2 }", lambda x: numpy.clip(x, -0.5, numpy.float32(1.2)),
     away_from(-0.5, 1.2)),                                # proto floats are float32: max is float32(1.2)
    ("ELU", "", lambda x: numpy.where(x > 0, x, numpy.expm1(x)), away_from(0)),
    ("ELU", "elu_param { alpha: 0.5 }", lambda x: numpy.where(x > 0, x, 0.5 * numpy.expm1(x)), away_from(0)),
    ("Sigmoid", "", sig, away_from()),
    ("TanH", "", numpy.tanh, away_from()),
    ("Swish", "", lambda x: x * sig(x), away_from()),
    ("Swish", "swish_param { beta: 1.5 }", lambda x: x * sig(1.5 * x), away_from()),
    ("PReLU", "", lambda x: numpy.where(x > 0, x, 0.25 * x), away_from(0)),
    ("PReLU", "prelu_param { channel_shared: true }", lambda x: numpy.where(x > 0, x, 0.25 * x), away_from(0)),
]


@pytest.mark.parametrize("kind,params,f,x", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_forward_and_gradient(kind, params, f, x):
    _, top = forward(neuron(kind, params), x)
    numpy.testing.assert_allclose(top.data, f(x), rtol=1e-12, atol=1e-15)
    check_layer_gradient(neuron(kind, params), [x])


@pytest.mark.parametrize("kind,params", [("BNLL", ""), ("Clip", "clip_param { min: -0.5 max: 1.2 }"),
                                         ("ELU", "elu_param { alpha: 0.5 }"), ("Sigmoid", ""), ("TanH", ""),
                                         ("Swish", "swish_param { beta: 1.5 }"),
                                         ("PReLU", "prelu_param { filler { type: 'constant' value: 0.3 } }")])
def test_in_place_gives_the_same_numbers(kind, params):
    """Each runs in place; those whose gradient reads the input keep a copy of it (as Caffe's PReLU does)."""
    x = away_from(-0.5, 0, 1.2)
    dy = rng.normal(size=x.shape)
    results = []
    for in_place in (False, True):
        layer = neuron(kind, params, top="x" if in_place else "y")
        bottom, top = forward(layer, x, in_place)
        y = top.data.copy()
        top.diff[...] = dy
        layer.param_propagate_down = [True] * len(layer.blobs)
        layer.run_backward([top], [True], [bottom])
        results.append([y, bottom.diff.copy()] + [b.diff.copy() for b in layer.blobs])
    for apart, together in zip(*results):
        numpy.testing.assert_allclose(together, apart, rtol=1e-12)


def test_prelu_slopes_and_their_gradient():
    layer = neuron("PReLU", "prelu_param { filler { type: 'uniform' min: 0.1 max: 0.4 } }")
    x = away_from(0)
    _, top = forward(layer, x)
    a = layer.blobs[0].data
    assert a.shape == (3,) and ((a >= 0.1) & (a <= 0.4)).all()
    numpy.testing.assert_allclose(top.data, numpy.where(x > 0, x, a[:, None, None] * x), rtol=1e-12)
    check_layer_gradient(neuron("PReLU", "prelu_param { filler { type: 'uniform' min: 0.1 max: 0.4 } }"), [x])
    shared = neuron("PReLU", "prelu_param { channel_shared: true }")
    forward(shared, x)
    assert shared.blobs[0].shape == () and float(shared.blobs[0].data) == 0.25    # a 0-d blob, as Caffe's


def test_prelu_on_a_2d_bottom():
    x = away_from(0, shape=(4, 3))
    check_layer_gradient(neuron("PReLU", "prelu_param { filler { type: 'uniform' min: 0.1 max: 0.4 } }"), [x])


def test_bnll_is_stable_for_large_inputs():
    x = numpy.array([[-800.0, -60.0, 60.0, 800.0]])
    _, top = forward(neuron("BNLL"), x)
    numpy.testing.assert_allclose(top.data, [[0, numpy.exp(-60), 60, 800]], rtol=1e-12, atol=1e-300)
    assert numpy.isfinite(forward(neuron("Sigmoid"), x)[1].data).all()


@pytest.mark.parametrize("kind,params,top,message", [
    ("AbsVal", "", "x", "AbsVal layer 'n': cannot run in place"),
    ("Clip", "clip_param { min: 0 }", "y", "missing required field.*clip_param.max"),
    ("Clip", "", "y", "Clip layer 'n': clip_param needs both min and max"),   # Caffe would clip to [0, 0]
])
def test_parameter_checks(kind, params, top, message):
    with pytest.raises(ValueError, match=message):
        forward(neuron(kind, params, top=top), rng.normal(size=(2, 3)), in_place=top == "x")


def test_prelu_needs_two_axes():
    with pytest.raises(ValueError, match=r"PReLU layer 'n': needs a bottom with at least 2 axes"):
        forward(neuron("PReLU"), rng.normal(size=(5,)))
