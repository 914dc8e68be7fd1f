"""Crop: hand-derived windows and shapes, gradients, and errors for impossible crops."""
import numpy
import pytest

from layers import Net
from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(5)


def crop(crop_param):
    return make_layer(f'name: "score" type: "Crop" bottom: "up" bottom: "data" top: "score" '
                      f'crop_param {{ {crop_param} }}')


def run(layer, *arrays):
    bottoms, tops = run_layer(layer, *arrays)
    return bottoms, tops[0]


@pytest.mark.parametrize("crop_param, window", [
    ("axis: 2 offset: 3", (slice(None), slice(None), slice(3, 7), slice(3, 8))),
    ("axis: 2 offset: 1 offset: 2", (slice(None), slice(None), slice(1, 5), slice(2, 7))),
    ("axis: 1 offset: 1 offset: 0 offset: 4", (slice(None), slice(1, 3), slice(0, 4), slice(4, 9))),
    ("axis: -2", (slice(None), slice(None), slice(0, 4), slice(0, 5))),        # default offset 0
    ("offset: 31", None),                                                    # FCN-8s: default axis 2
])
def test_crop_windows(crop_param, window):
    if window is None:
        x, ref = rng.normal(size=(1, 2, 568, 568)), numpy.zeros((1, 3, 500, 500))
        window = (slice(None), slice(None), slice(31, 531), slice(31, 531))
    else:
        x, ref = rng.normal(size=(2, 3, 9, 10)), numpy.zeros((2, 2, 4, 5))
    layer = crop(crop_param)
    (xb, refb), top = run(layer, x, ref)
    numpy.testing.assert_array_equal(top.data, x[window])
    # backward: the window gets the top diff, the rest 0; the reference gets nothing
    top.diff[...] = rng.normal(size=top.shape)
    layer.run_backward([top], [True, True], [xb, refb])
    expected = numpy.zeros_like(x)
    expected[window] = top.diff
    numpy.testing.assert_array_equal(xb.diff, expected)
    assert not refb.diff.any()


def test_crop_gradient():
    check_layer_gradient(crop("axis: 2 offset: 1 offset: 2"), [rng.normal(size=(2, 3, 6, 7)),
                                                               rng.normal(size=(2, 1, 3, 4))],
                         propagate_down=[True, False])


def test_crop_follows_the_reference_size_in_a_net():
    """FCN-32s style: the crop output follows `data` when the input size changes."""
    net = Net('''
        layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 6 } } }
        layer { name: "up" type: "Deconvolution" bottom: "data" top: "up" convolution_param {
                num_output: 2 kernel_size: 4 stride: 2 bias_term: false weight_filler { type: "gaussian" } } }
        layer { name: "score" type: "Crop" bottom: "up" bottom: "data" top: "score" crop_param { offset: 1 } }
    ''')
    assert net.blobs["score"].shape == (1, 2, 4, 6)
    out = net.forward(data=rng.normal(size=(1, 1, 7, 5)))
    assert out["score"].shape == (1, 2, 7, 5)
    numpy.testing.assert_array_equal(out["score"], net.blobs["up"].data[:, :, 1:8, 1:6])


def test_crop_larger_than_its_input_names_layer_axis_offset_and_sizes():
    with pytest.raises(ValueError, match=r"Crop layer 'score': crop of axis 3 is out of bounds: offset 19 \+ "
                                         r"size 500 .* exceeds bottom\[0\]'s size 516"):
        run(crop("axis: 2 offset: 19"), numpy.zeros((1, 21, 544, 516)), numpy.zeros((1, 3, 500, 500)))


def test_crop_parameter_errors():
    x, ref = numpy.zeros((1, 2, 8, 8)), numpy.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"Crop layer 'score': crop_param.offset needs 0, 1 or 2 values .* got 3"):
        run(crop("axis: 2 offset: 1 offset: 2 offset: 3"), x, ref)
    with pytest.raises(ValueError, match=r"Crop layer 'score': axis 4 is out of range"):
        run(crop("axis: 4"), x, ref)
    with pytest.raises(ValueError, match=r"Crop layer 'score': .* fewer axes"):
        run(crop("axis: 1"), x, numpy.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"Crop layer 'score': takes exactly 2 bottom blob\(s\), got 1"):
        run(make_layer('name: "score" type: "Crop" bottom: "up" top: "score"'), x)
