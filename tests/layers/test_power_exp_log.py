"""Power, Exp and Log: closed-form forward values and numerical gradient checks over their parameters (the
golden cases in test_golden.py compare one setting of each against real Caffe)."""
import numpy
import pytest

from layers import Blob
from tests.gradient_check import check_layer_gradient, make_layer

rng = numpy.random.default_rng(7)


def layer_of(kind, params):
    return make_layer(f'name: "f" type: "{kind}" bottom: "x" top: "y" {kind.lower()}_param {{ {params} }}')


def forward(layer, x):
    bottom, top = Blob(*x.shape, dtype=numpy.float64), Blob(dtype=numpy.float64)
    bottom.data[...] = x
    layer.run_setup([bottom], [top])
    layer.run_forward([bottom], [top])
    return top.data


def away_from_zero(*shape):
    x = rng.uniform(0.3, 1.5, size=shape)
    return x * rng.choice([-1, 1], size=shape)


@pytest.mark.parametrize("power,scale,shift,x", [
    (2, 0.5, 1, rng.normal(size=(2, 3, 4))),
    (2, -1.5, 0, rng.normal(size=(2, 3, 4))),
    (3, 1.5, 0, away_from_zero(2, 3, 4)),                  # Caffe's y/x case
    (0.5, 2, 3, rng.uniform(0, 2, size=(2, 3, 4))),         # the general case
    (-1.5, 1, 0, rng.uniform(0.5, 2, size=(2, 3, 4))),
    (1, 2, -1, rng.normal(size=(2, 3, 4))),                 # linear
    (0, 2, 1, rng.normal(size=(2, 3, 4))),                  # constant 1
    (2, 0, 3, rng.normal(size=(2, 3, 4))),                  # constant shift^power
])
def test_power(power, scale, shift, x):
    params = f"power: {power} scale: {scale} shift: {shift}"
    numpy.testing.assert_allclose(forward(layer_of("Power", params), x), (shift + scale * x) ** power, rtol=1e-12)
    check_layer_gradient(layer_of("Power", params), [x])


def test_power_in_place_backward_needs_the_input():
    layer = make_layer('name: "p" type: "Power" bottom: "x" top: "x" power_param { power: 3 }')
    blob = Blob(2, 3)
    layer.run_setup([blob], [blob])
    layer.run_forward([blob], [blob])
    with pytest.raises(ValueError, match=r"Power layer 'p': cannot back-propagate in place"):
        layer.run_backward([blob], [True], [blob])


@pytest.mark.parametrize("base,scale,shift,expected", [
    (-1, 1, 0, lambda x: numpy.exp(x)),
    (-1, 0.5, 0.3, lambda x: numpy.exp(0.3 + 0.5 * x)),
    (2, 0.5, 1, lambda x: 2 ** (1 + 0.5 * x)),
    (10, -1, -1, lambda x: 10 ** (-1 - x)),
])
def test_exp(base, scale, shift, expected):
    x = rng.normal(size=(2, 3, 2, 2))
    params = f"base: {base} scale: {scale} shift: {shift}"
    numpy.testing.assert_allclose(forward(layer_of("Exp", params), x), expected(x), rtol=1e-6)
    check_layer_gradient(layer_of("Exp", params), [x])


def test_exp_runs_in_place():
    layer = make_layer('name: "e" type: "Exp" bottom: "x" top: "x" exp_param { scale: 2 }')
    blob = Blob(2, 3, dtype=numpy.float64)
    x = rng.normal(size=(2, 3))
    blob.data[...] = x
    layer.run_setup([blob], [blob])
    layer.run_forward([blob], [blob])
    blob.diff[...] = 1
    layer.run_backward([blob], [True], [blob])
    numpy.testing.assert_allclose(blob.diff, 2 * numpy.exp(2 * x), rtol=1e-12)


@pytest.mark.parametrize("base,scale,shift,expected", [
    (-1, 1, 0, lambda x: numpy.log(x)),
    (-1, 1, 2, lambda x: numpy.log(2 + x)),
    (2, 3, 1, lambda x: numpy.log2(1 + 3 * x)),
    (10, 0.5, 0, lambda x: numpy.log10(0.5 * x)),
])
def test_log(base, scale, shift, expected):
    x = rng.uniform(0.2, 3, size=(2, 3, 2, 2))
    params = f"base: {base} scale: {scale} shift: {shift}"
    numpy.testing.assert_allclose(forward(layer_of("Log", params), x), expected(x), rtol=1e-6)
    check_layer_gradient(layer_of("Log", params), [x])


@pytest.mark.parametrize("kind,base,message", [
    ("Exp", 0, "base must be strictly positive"),
    ("Exp", -2, "base must be strictly positive"),
    ("Log", -3, "base must be strictly positive"),
    ("Log", 1, "has no usable logarithm"),
])
def test_bad_base(kind, base, message):
    with pytest.raises(ValueError, match=f"{kind} layer 'f': .*{message}"):
        forward(layer_of(kind, f"base: {base}"), numpy.ones((2, 2)))
