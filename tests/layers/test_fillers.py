"""Caffe's fillers, checked by their statistics (bilinear is checked against Caffe's values in the golden suite)."""
import math

import numpy
import pytest

from layers import fillers
from netspec import caffe_pb2

F = caffe_pb2.FillerParameter
SHAPE = (64, 32, 5, 5)          # fan_in 800, fan_out 1600


def fill(shape=SHAPE, **kw):
    return fillers.fill(F(**kw), shape, rng=numpy.random.default_rng(3))


def test_constant():
    assert (fill(type="constant", value=0.25) == numpy.float32(0.25)).all()
    assert not fill(type="constant").any()                      # Caffe's default filler: constant 0
    assert fill(type="constant").dtype == numpy.float32


def test_uniform_range_and_mean():
    x = fill(type="uniform", min=-2, max=3)
    assert x.min() >= -2 and x.max() <= 3
    assert abs(x.mean() - 0.5) < 0.05 and abs(x.var() - 25 / 12) < 0.05


def test_gaussian_moments_and_sparse():
    x = fill(type="gaussian", mean=1, std=0.5)
    assert abs(x.mean() - 1) < 0.01 and abs(x.std() - 0.5) < 0.01
    sparse = fill(type="gaussian", std=1, sparse=16)              # keeps each weight with p = 16 / shape[0]
    assert abs((sparse != 0).mean() - 16 / 64) < 0.01


def test_positive_unitball_rows_sum_to_one():
    x = fill(type="positive_unitball")
    assert (x >= 0).all()
    numpy.testing.assert_allclose(x.reshape(64, -1).sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("norm, n", [(F.FAN_IN, 800), (F.FAN_OUT, 1600), (F.AVERAGE, 1200)])
def test_xavier_is_uniform_with_variance_1_over_n(norm, n):
    x = fill(type="xavier", variance_norm=norm)
    scale = math.sqrt(3 / n)
    assert x.min() >= -scale and x.max() <= scale
    assert abs(x.var() * n - 1) < 0.03


@pytest.mark.parametrize("norm, n", [(F.FAN_IN, 800), (F.FAN_OUT, 1600), (F.AVERAGE, 1200)])
def test_msra_is_gaussian_with_variance_2_over_n(norm, n):
    x = fill(type="msra", variance_norm=norm)
    assert abs(x.mean()) < 0.002 and abs(x.var() * n / 2 - 1) < 0.03


def test_bilinear_k4_is_fcn_upsampling_kernel():
    x = fillers.bilinear((2, 2, 4, 4))
    g = numpy.array([0.25, 0.75, 0.75, 0.25], dtype=numpy.float32)
    numpy.testing.assert_array_equal(x[1, 0], numpy.outer(g, g))


def test_unknown_filler_is_named():
    with pytest.raises(ValueError, match="unknown filler type 'gausian'"):
        fill(type="gausian")
