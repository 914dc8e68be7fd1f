"""Eltwise: gradients for SUM/coeff/PROD/MAX, Caffe's MAX tie rule, and errors."""
import numpy
import pytest

from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(7)


def eltwise(param, bottoms=3):
    names = " ".join(f'bottom: "{n}"' for n in "abcd"[:bottoms])
    return make_layer(f'name: "fuse" type: "Eltwise" {names} top: "y" eltwise_param {{ {param} }}')


def run(layer, *arrays):
    bottoms, tops = run_layer(layer, *arrays)
    return bottoms, tops[0]


@pytest.mark.parametrize("param", [
    "operation: SUM",
    "operation: SUM coeff: 1 coeff: -0.5 coeff: 2",
    "operation: PROD",
    "operation: PROD stable_prod_grad: false",
])
def test_eltwise_gradient(param):
    xs = [rng.normal(size=(2, 3, 4, 5)) for _ in range(3)]
    check_layer_gradient(eltwise(param), xs)


def test_eltwise_max_gradient():
    values = rng.permutation(3 * 2 * 3 * 4 * 5).reshape(3, 2, 3, 4, 5) * 0.1     # tie-free
    check_layer_gradient(eltwise("operation: MAX"), list(values))


def test_eltwise_values():
    a, b, c = (rng.normal(size=(2, 3, 4)).astype(numpy.float32) for _ in range(3))
    _, top = run(eltwise("operation: SUM coeff: 0.5 coeff: -1 coeff: 3"), a, b, c)
    numpy.testing.assert_allclose(top.data, 0.5 * a - b + 3 * c, rtol=1e-6)
    _, top = run(eltwise("operation: PROD"), a, b, c)
    numpy.testing.assert_allclose(top.data, a * b * c, rtol=1e-6)
    _, top = run(eltwise("operation: MAX"), a, b, c)
    numpy.testing.assert_array_equal(top.data, numpy.maximum(numpy.maximum(a, b), c))


def test_eltwise_max_ties_follow_caffe_cpu():
    """Caffe compares bottom 0 > bottom 1 (so a tie goes to bottom 1), then takes bottom i >= 2 only when it is
    strictly larger (so a tie keeps the earlier winner)."""
    a = numpy.array([1.0, 2.0, 3.0, 0.0])
    b = numpy.array([1.0, 1.0, 3.0, 0.0])
    c = numpy.array([0.0, 2.0, 3.0, 5.0])
    layer = eltwise("operation: MAX")
    bottoms, top = run(layer, a, b, c)
    numpy.testing.assert_array_equal(layer.mask, [1, 0, 1, 2])
    top.diff[...] = [10.0, 20.0, 30.0, 40.0]
    layer.run_backward([top], [True] * 3, bottoms)
    numpy.testing.assert_array_equal(bottoms[0].diff, [0, 20, 0, 0])
    numpy.testing.assert_array_equal(bottoms[1].diff, [10, 0, 30, 0])
    numpy.testing.assert_array_equal(bottoms[2].diff, [0, 0, 0, 40])


def test_eltwise_stable_prod_grad_handles_zeros():
    a, b = numpy.array([0.0, 2.0]), numpy.array([3.0, 0.0])
    layer = eltwise("operation: PROD", bottoms=2)
    bottoms, top = run(layer, a, b)
    top.diff[...] = 1
    layer.run_backward([top], [True, True], bottoms)
    numpy.testing.assert_array_equal(bottoms[0].diff, b)
    numpy.testing.assert_array_equal(bottoms[1].diff, a)


def test_eltwise_mismatched_shapes_name_the_layer_and_both_shapes():
    with pytest.raises(ValueError, match=r"Eltwise layer 'fuse': all bottoms must have the same shape: bottom\[0\] "
                                         r"'a' is \(1, 21, 34, 34\), bottom\[1\] 'b' is \(1, 21, 44, 44\)"):
        run(eltwise("operation: SUM", bottoms=2), numpy.zeros((1, 21, 34, 34)), numpy.zeros((1, 21, 44, 44)))


def test_eltwise_parameter_errors():
    x = numpy.zeros((2, 3))
    with pytest.raises(ValueError, match=r"Eltwise layer 'fuse': eltwise_param.coeff needs one value per bottom"):
        run(eltwise("coeff: 1", bottoms=2), x, x)
    with pytest.raises(ValueError, match=r"Eltwise layer 'fuse': eltwise_param.coeff applies to operation SUM"):
        run(eltwise("operation: PROD coeff: 1 coeff: 2", bottoms=2), x, x)
    with pytest.raises(ValueError, match=r"Eltwise layer 'fuse': takes at least 2 bottom blob\(s\), got 1"):
        run(eltwise("", bottoms=1), x)
