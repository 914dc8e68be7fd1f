"""SPP: Caffe's per-level pooling geometry, the flattened concatenation, pyramid_height 1, numerical gradients."""
import numpy
import pytest

from layers.spp import level_pooling
from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(5)


def spp(height, pool="MAX"):
    return make_layer(f'name: "spp" type: "SPP" bottom: "x" top: "y" spp_param {{ pyramid_height: {height} '
                      f'pool: {pool} }}')


def tie_free(*shape):
    return rng.permutation(numpy.prod(shape)).reshape(shape) / 10.0


def test_level_geometry_is_caffes():
    p = level_pooling("spp", 2, 9, 11, 0).pooling_param           # 4 x 4 bins
    assert (p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w) == (3, 3, 3, 3, 2, 1)
    p = level_pooling("spp", 0, 5, 7, 1).pooling_param            # one bin: the whole image
    assert (p.kernel_h, p.kernel_w, p.pad_h, p.pad_w) == (5, 7, 0, 0)


@pytest.mark.parametrize("height, pool, shape, width", [
    (3, "MAX", (1, 2, 9, 7), 2 * (1 + 4 + 16)),
    (2, "AVE", (2, 3, 5, 7), 3 * (1 + 4)),
    (2, "MAX", (1, 2, 4, 4), 2 * (1 + 4)),
])
def test_levels_flattened_and_gradient(height, pool, shape, width):
    x = tie_free(*shape)
    _, top = run_layer(spp(height, pool), x)
    assert top[0].shape == (shape[0], width)
    whole = x.reshape(*shape[:2], -1)
    first = whole.max(axis=2) if pool == "MAX" else whole.mean(axis=2)
    numpy.testing.assert_allclose(top[0].data[:, :shape[1]], first)          # level 0 pools everything
    check_layer_gradient(spp(height, pool), [x])


def test_pyramid_height_one_is_unflattened_and_reshapes():
    layer = spp(1, "AVE")
    x = rng.normal(size=(2, 3, 4, 5))
    bottoms, top = run_layer(layer, x)
    assert top[0].shape == (2, 3, 1, 1)                       # Caffe's lone Pooling sublayer writes the top
    numpy.testing.assert_allclose(top[0].data.reshape(2, 3), x.mean(axis=(2, 3)))
    bottoms[0].reshape(1, 3, 6, 7)                             # a new size rebuilds the levels
    bottoms[0].data[...] = 1.0
    layer.run_forward(bottoms, top)
    assert top[0].shape == (1, 3, 1, 1) and numpy.allclose(top[0].data, 1.0)


def test_errors():
    with pytest.raises(ValueError, match="SPP layer 'spp': spp_param.pyramid_height must be set"):
        run_layer(spp(0), rng.normal(size=(1, 1, 4, 4)))
    with pytest.raises(ValueError, match="input must have 4 axes"):
        run_layer(spp(2), rng.normal(size=(1, 4, 4)))
