"""Dropout: Caffe's train-time Bernoulli mask scaled by 1/(1-ratio), the identity in TEST, in place."""
import numpy
import pytest

from layers import Blob, Net
from tests.gradient_check import check_layer_gradient, make_layer

rng = numpy.random.default_rng(13)


def dropout(ratio, phase):
    return make_layer(f'name: "drop6" type: "Dropout" bottom: "x" top: "y" dropout_param {{ dropout_ratio: {ratio} }}',
                      phase=phase)


def run(layer, x):
    bottom, top = Blob(*x.shape, dtype=x.dtype), Blob(dtype=x.dtype)
    bottom.data[...] = x
    layer.run_setup([bottom], [top])
    layer.run_forward([bottom], [top])
    return bottom, top


@pytest.mark.parametrize("ratio", [0.5, 0.2])
def test_train_mask_scale_and_backward(ratio):
    numpy.random.seed(0)
    x = rng.uniform(1, 2, size=(64, 32, 8)).astype(numpy.float32)     # never 0, so kept elements are visible
    layer = dropout(ratio, "TRAIN")
    bottom, top = run(layer, x)
    kept = top.data != 0
    scale = numpy.float32(1 / (1 - numpy.float32(ratio)))
    numpy.testing.assert_array_equal(top.data[kept], x[kept] * scale)
    assert abs(kept.mean() - (1 - ratio)) < 0.02              # Bernoulli(1 - ratio): 16384 draws, sd < 0.004
    top.diff[...] = rng.normal(size=x.shape)
    layer.run_backward([top], [True], [bottom])
    numpy.testing.assert_array_equal(bottom.diff, top.diff * kept * scale)
    # a new forward draws a new mask
    layer.run_forward([bottom], [top])
    assert ((top.data != 0) != kept).any()


def test_test_phase_is_the_identity():
    x = rng.normal(size=(2, 3, 4)).astype(numpy.float32)
    layer = dropout(0.5, "TEST")
    bottom, top = run(layer, x)
    numpy.testing.assert_array_equal(top.data, x)
    top.diff[...] = x * 3
    layer.run_backward([top], [True], [bottom])
    numpy.testing.assert_array_equal(bottom.diff, x * 3)
    check_layer_gradient(dropout(0.5, "TEST"), [x.astype(numpy.float64)])


def test_ratio_zero_gradient_in_train():
    check_layer_gradient(dropout(0.0, "TRAIN"), [rng.normal(size=(2, 3, 4))])


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_in_place_in_a_net(phase):
    """FCN's drop6/drop7 run in place: the blob holds the dropped values and its diff is masked the same way."""
    net = Net('''
        layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 4 dim: 8 dim: 8 } } }
        layer { name: "fc6" type: "Convolution" bottom: "data" top: "fc6"
                convolution_param { num_output: 16 kernel_size: 1 weight_filler { type: "gaussian" } } }
        layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" loss_weight: 1
                dropout_param { dropout_ratio: 0.5 } }
    ''', phase=phase)
    x = rng.uniform(1, 2, size=(2, 4, 8, 8))
    net.params["fc6"][0].data[...] = numpy.abs(net.params["fc6"][0].data) + 0.1    # every fc6 output > 0
    out = net.forward(data=x)["fc6"]
    assert net.outputs == ["fc6"]
    kept = out != 0
    if phase == "TEST":
        assert kept.all()
    else:
        assert 0.4 < kept.mean() < 0.6
    net.backward()
    numpy.testing.assert_array_equal(net.blobs["fc6"].diff, numpy.where(kept, 2 if phase == "TRAIN" else 1, 0))


def test_bad_ratio():
    with pytest.raises(ValueError, match=r"Dropout layer 'drop6': dropout_param.dropout_ratio must be in \[0, 1\)"):
        run(dropout(1.0, "TRAIN"), numpy.zeros(3))
