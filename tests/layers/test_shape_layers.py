"""Concat, Flatten, Reshape, Silence and DummyData: hand-derived shapes (Caffe's own test cases), values,
gradients and errors."""
import numpy
import pytest

from layers import Blob, Net
from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(17)


# ---------------------------------------------------------------- Concat
def concat(param, n=3):
    names = " ".join(f'bottom: "{c}"' for c in "abcd"[:n])
    return make_layer(f'name: "cat" type: "Concat" {names} top: "y" concat_param {{ {param} }}')


@pytest.mark.parametrize("param, axis", [("", 1), ("axis: 0", 0), ("axis: -1", 3), ("concat_dim: 2", 2)])
def test_concat_values_and_gradient(param, axis):
    shapes = []
    for k in (1, 2, 3):
        shape = [2, 3, 4, 5]
        shape[axis] = k
        shapes.append(tuple(shape))
    xs = [rng.normal(size=s) for s in shapes]
    _, (top,) = run_layer(concat(param), *xs)
    numpy.testing.assert_array_equal(top.data, numpy.concatenate(xs, axis=axis))
    check_layer_gradient(concat(param), xs)


def test_concat_errors():
    with pytest.raises(ValueError, match=r"Concat layer 'cat': bottoms must have the same shape except on axis 1: "
                                         r"bottom\[0\] 'a' is \(2, 3, 4\), bottom\[1\] 'b' is \(2, 3, 5\)"):
        run_layer(concat("", n=2), numpy.zeros((2, 3, 4)), numpy.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"Concat layer 'cat': give either concat_param.axis or the legacy "
                                         r"concat_dim, not both"):
        run_layer(concat("axis: 1 concat_dim: 1", n=2), numpy.zeros((2, 3)), numpy.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Concat layer 'cat': concat_dim 3 is out of range"):
        run_layer(concat("concat_dim: 3", n=2), numpy.zeros((2, 3)), numpy.zeros((2, 3)))


# ---------------------------------------------------------------- Flatten
@pytest.mark.parametrize("param, shape", [
    ("", (2, 90)),                                       # caffe test_flatten_layer.cpp, bottom (2, 3, 6, 5)
    ("axis: 2", (2, 3, 30)),
    ("end_axis: -2", (2, 18, 5)),
    ("axis: 0 end_axis: 1", (6, 6, 5)),
])
def test_flatten_shapes_values_and_gradient(param, shape):
    x = rng.normal(size=(2, 3, 6, 5))
    layer = make_layer(f'name: "flat" type: "Flatten" bottom: "x" top: "y" flatten_param {{ {param} }}')
    _, (top,) = run_layer(layer, x)
    assert top.shape == shape
    numpy.testing.assert_array_equal(top.data, x.reshape(shape))
    layer = make_layer(f'name: "flat" type: "Flatten" bottom: "x" top: "y" flatten_param {{ {param} }}')
    check_layer_gradient(layer, [rng.normal(size=(2, 3, 2, 2))])


def test_flatten_errors():
    with pytest.raises(ValueError, match=r"Flatten layer 'flat': end_axis 1 comes before axis 2"):
        run_layer(make_layer('name: "flat" type: "Flatten" bottom: "x" top: "y" flatten_param { axis: 2 end_axis: 1 }'),
            numpy.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"Flatten layer 'flat': cannot flatten in place"):
        layer = make_layer('name: "flat" type: "Flatten" bottom: "x" top: "x"')
        blob = Blob(2, 3)
        layer.run_setup([blob], [blob])


# ---------------------------------------------------------------- Reshape
@pytest.mark.parametrize("param, shape", [            # caffe test_reshape_layer.cpp, bottom (2, 3, 6, 5)
    ("shape { dim: 0 dim: -1 dim: 1 dim: 1 }", (2, 90, 1, 1)),
    ("shape { dim: 0 dim: 0 dim: 0 dim: 0 }", (2, 3, 6, 5)),
    ("shape { dim: 0 dim: 3 dim: 10 dim: -1 }", (2, 3, 10, 3)),
    ("axis: 1 num_axes: 3 shape { dim: 3 dim: 10 dim: -1 }", (2, 3, 10, 3)),
    ("axis: 0 num_axes: 0 shape { dim: 1 dim: 1 dim: 1 }", (1, 1, 1, 2, 3, 6, 5)),
    ("axis: 2 num_axes: 0 shape { dim: 1 dim: 1 dim: 1 }", (2, 3, 1, 1, 1, 6, 5)),
    ("axis: -1 num_axes: 0 shape { dim: 1 dim: 1 dim: 1 }", (2, 3, 6, 5, 1, 1, 1)),
    ("axis: 1 num_axes: 2 shape { dim: -1 }", (2, 18, 5)),
    ("shape { dim: 6 dim: 2 dim: 3 dim: 5 }", (6, 2, 3, 5)),
    ("axis: -3 shape { dim: 30 }", (2, 3, 30)),           # -1 is after the last axis
])
def test_reshape_shapes_values_and_gradient(param, shape):
    x = rng.normal(size=(2, 3, 6, 5))
    layer = make_layer(f'name: "rs" type: "Reshape" bottom: "x" top: "y" reshape_param {{ {param} }}')
    _, (top,) = run_layer(layer, x)
    assert top.shape == shape
    numpy.testing.assert_array_equal(top.data, x.reshape(shape))
    top.diff[...] = rng.normal(size=shape)
    bottom = Blob(*x.shape, dtype=x.dtype)
    layer.run_backward([top], [True], [bottom])
    numpy.testing.assert_array_equal(bottom.diff, top.diff.reshape(x.shape))


def test_reshape_gradient_and_size_change():
    layer = make_layer('name: "rs" type: "Reshape" bottom: "x" top: "y" reshape_param { shape { dim: 0 dim: -1 } }')
    check_layer_gradient(layer, [rng.normal(size=(2, 3, 2))])
    bottoms, (top,) = run_layer(layer, rng.normal(size=(2, 3, 2)))
    bottoms[0].reshape(4, 5, 2)                             # a new input size: -1 is inferred again
    layer.run_forward(bottoms, [top])
    assert top.shape == (4, 10)


@pytest.mark.parametrize("param, message", [
    ("shape { dim: -1 dim: -1 }", r"more than one -1"),
    ("shape { dim: 7 dim: -1 }", r"cannot infer the -1 in \[7, -1\]: bottom count 180"),
    ("shape { dim: 7 dim: 5 }", r"the new shape \(7, 5\) has 35 values, bottom \(2, 3, 6, 5\) has 180"),
    ("axis: 3 num_axes: 0 shape { dim: 0 dim: 0 }", r"has a 0 at position 1 but bottom shape .* has no axis 4"),
    ("axis: 5 shape { dim: 1 }", r"reshape_param.axis 5 is out of range"),
    ("axis: 2 num_axes: 3 shape { dim: 1 }", r"axis 2 \+ num_axes 3 runs past the end"),
    ("shape { dim: -2 }", r"sizes must be >= 0"),
])
def test_reshape_errors(param, message):
    layer = make_layer(f'name: "rs" type: "Reshape" bottom: "x" top: "y" reshape_param {{ {param} }}')
    with pytest.raises(ValueError, match=r"Reshape layer 'rs': .*" + message):
        run_layer(layer, numpy.zeros((2, 3, 6, 5)))


# ---------------------------------------------------------------- Silence
def test_silence_zeroes_its_bottoms_diffs_and_hides_them_from_the_outputs():
    net = Net('''
        force_backward: true
        layer { name: "data" type: "Input" top: "data" top: "aux"
                input_param { shape { dim: 2 dim: 3 } shape { dim: 4 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" loss_weight: 1
                inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
        layer { name: "silence" type: "Silence" bottom: "aux" }
    ''')
    assert net.outputs == ["ip"]
    net.blobs["aux"].diff[...] = 7                         # whatever was there is overwritten
    net.forward(data=rng.normal(size=(2, 3)), aux=rng.normal(size=4))
    net.backward()
    assert not net.blobs["aux"].diff.any()
    assert net.blobs["data"].diff.any()
    with pytest.raises(ValueError, match=r"Silence layer 's': takes at least 1 bottom blob\(s\), got 0"):
        run_layer(make_layer('name: "s" type: "Silence"'))


# ---------------------------------------------------------------- DummyData
def test_dummy_data_constant_is_filled_once_and_other_fillers_every_forward():
    layer = make_layer('''name: "dummy" type: "DummyData" top: "a" top: "b" dummy_data_param {
        data_filler { type: "constant" value: 0.5 } data_filler { type: "gaussian" std: 2 }
        shape { dim: 2 dim: 3 } shape { dim: 4 dim: 5 dim: 6 } }''')
    a, b = Blob(), Blob()
    layer.run_setup([], [a, b])
    assert a.shape == (2, 3) and b.shape == (4, 5, 6)
    numpy.testing.assert_array_equal(a.data, 0.5)
    assert not b.data.any()                               # Caffe fills non-constant tops only in forward
    layer.run_forward([], [a, b])
    first = b.data.copy()
    assert 1.5 < first.std() < 2.5
    a.data[0, 0] = 9                                      # constant tops are not refilled
    layer.run_forward([], [a, b])
    assert a.data[0, 0] == 9
    assert not numpy.array_equal(b.data, first)


def test_dummy_data_legacy_dims_and_defaults():
    layer = make_layer('''name: "dummy" type: "DummyData" top: "a" top: "b" dummy_data_param {
        num: 2 channels: 3 channels: 1 height: 4 width: 5 width: 1 }''')
    _, (a, b) = run_layer(layer, tops=2)
    assert a.shape == (2, 3, 4, 5) and b.shape == (2, 1, 4, 1)
    assert not a.data.any() and not b.data.any()          # no filler: constant 0
    layer = make_layer('name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { '
                       'data_filler { type: "constant" value: -1 } shape { dim: 3 } }')
    _, (a, b) = run_layer(layer, tops=2)
    numpy.testing.assert_array_equal(a.data, -1)
    numpy.testing.assert_array_equal(b.data, -1)


@pytest.mark.parametrize("param, message", [
    ("shape { dim: 2 } num: 2", r"give either dummy_data_param.shape or the legacy"),
    ("shape { dim: 2 } shape { dim: 2 } shape { dim: 2 }", r"shape must be given once or once per top \(2\), got 3"),
    ("num: 1 num: 2 num: 3 channels: 1 height: 1 width: 1", r"num must be given once or once per top \(2\), got 3"),
    ("shape { dim: 2 } data_filler {} data_filler {} data_filler {}", r"needs 0, 1 or 2 data_filler"),
])
def test_dummy_data_errors(param, message):
    layer = make_layer(f'name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param {{ {param} }}')
    with pytest.raises(ValueError, match=r"DummyData layer 'd': .*" + message):
        run_layer(layer, tops=2)
