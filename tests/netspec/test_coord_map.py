"""netspec.coord_map: coordinate maps per layer, their algebra, and crop offsets computed from the graph."""
from fractions import Fraction as F

import numpy as np
import pytest

from layers import Net
from layers.fillers import bilinear
from netspec import NetSpec, layers as L, params as P
from netspec.coord_map import UndefinedMapError, compose, coord_map, coord_map_from_to, crop, crop_offsets, inverse
from netspec.errors import NetDefinitionError


def data(h=48, w=48, channels=1):
    return L.Input(shape=dict(dim=[1, channels, h, w]))


# ---- one layer: x_top = a * x_bottom + b, derived by hand from where each window's centre falls ----------------

@pytest.mark.parametrize("make, expected", [
    # conv k3 p1: output i's window is centred on input i -> identity
    (lambda x: L.Convolution(x, num_output=1, kernel_size=3, pad=1), (2, (1,), (0,))),
    # conv1_1's pad 100: output i is centred on input i - 99 -> x_top = x + 99
    (lambda x: L.Convolution(x, num_output=1, kernel_size=3, pad=100), (2, (1,), (99,))),
    # stride 2, k7 p3: centre of window i is 2i -> x_top = x/2
    (lambda x: L.Convolution(x, num_output=1, kernel_size=7, stride=2, pad=3), (2, (F(1, 2),), (0,))),
    # dilation 2 widens k3 to 5: centre of window i is i + 2 -> x_top = x - 2
    (lambda x: L.Convolution(x, num_output=1, kernel_size=3, dilation=2), (2, (1,), (-2,))),
    # max pool 2/2: window i covers 2i, 2i+1, centre 2i + 1/2 -> x_top = x/2 - 1/4
    (lambda x: L.Pooling(x, pool=P.Pooling.MAX, kernel_size=2, stride=2), (2, (F(1, 2),), (F(-1, 4),))),
    # AlexNet's pool 3/2: centre 2i + 1 -> x_top = x/2 - 1/2
    (lambda x: L.Pooling(x, kernel_size=3, stride=2), (2, (F(1, 2),), (F(-1, 2),))),
    # deconv k4 s2: input i spreads to 2i..2i+3, centre 2i + 3/2
    (lambda x: L.Deconvolution(x, num_output=1, kernel_size=4, stride=2), (2, (2,), (F(3, 2),))),
    # FCN-32s's k64 s32: centre 32i + 31.5; FCN-AlexNet's k63: 32i + 31
    (lambda x: L.Deconvolution(x, num_output=1, kernel_size=64, stride=32), (2, (32,), (F(63, 2),))),
    (lambda x: L.Deconvolution(x, num_output=1, kernel_size=63, stride=32), (2, (32,), (31,))),
    # Crop keeps bottom[0]'s scale and starts `offset` in
    (lambda x: L.Crop(x, x, axis=2, offset=5), (2, (1,), (-5,))),
    (lambda x: L.Crop(x, x, axis=2, offset=[1, 2]), (2, (1, 1), (-1, -2))),
    # rectangular kernels: one value per spatial axis
    (lambda x: L.Convolution(x, num_output=1, kernel_h=3, kernel_w=5, pad_h=0, pad_w=2), (2, (1, 1), (-1, 0))),
    (lambda x: L.Convolution(x, num_output=1, kernel_size=[3, 5], stride=[1, 2]), (2, (1, F(1, 2)), (-1, -1))),
    # a convolution over axis 2 (channels on axis 2, space from axis 3)
    (lambda x: L.Convolution(x, num_output=1, kernel_size=3, axis=2), (3, (1,), (-1,))),
    (lambda x: L.ReLU(x), (None, (1,), (0,))),
    (lambda x: L.Dropout(x, dropout_ratio=0.5), (None, (1,), (0,))),
    (lambda x: L.Scale(x), (None, (1,), (0,))),
    (lambda x: L.Eltwise(x, x), (None, (1,), (0,))),
    (lambda x: L.Concat(x, x), (None, (1,), (0,))),
])
def test_coord_map_of_one_layer(make, expected):
    assert coord_map(make(data())) == expected


@pytest.mark.parametrize("make", [
    lambda x: L.InnerProduct(x, num_output=10),
    lambda x: L.Pooling(x, global_pooling=True),
    lambda x: L.Concat(x, x, axis=3),                   # stacking along a spatial axis moves pixels
])
def test_layers_without_a_coordinate_map(make):
    with pytest.raises(UndefinedMapError, match=r"no coordinate map"):
        coord_map(make(data()))


def test_compose_and_inverse():
    conv = (2, (F(1, 2),), (F(-1, 4),))
    deconv = (2, (2,), (F(3, 2),))
    # deconv after pool: x -> 2 * (x/2 - 1/4) + 3/2 = x + 1
    assert compose(deconv, conv) == (2, (1,), (1,))
    assert compose(conv, inverse(conv)) == (2, (1,), (0,))
    assert inverse(inverse(conv)) == conv
    assert compose((None, (1,), (0,)), conv) == conv == compose(conv, (None, (1,), (0,)))
    # one value broadcasts against per-axis values
    assert compose((2, (2,), (1,)), (2, (1, F(1, 2)), (3, 0))) == (2, (2, 1), (7, 1))
    with pytest.raises(NetDefinitionError, match=r"spatial axes from 2 and from 3"):
        compose((2, (1,), (0,)), (3, (1,), (0,)))


# ---- crop offsets of the FCN graphs (the values in every reference prototxt) ---------------------------------

def vgg_fcn(stride, n=None):
    """The FCN-VGG16 graph (widths 1: only geometry matters) with its 32s/16s/8s head; returns the NetSpec."""
    n = n or NetSpec()
    n.data = data(500, 500, 3)
    top = n.data
    for block, convs in enumerate([2, 2, 3, 3, 3], 1):
        for i in range(convs):
            top = L.ReLU(L.Convolution(top, num_output=1, kernel_size=3, pad=100 if block == 1 and i == 0 else 1))
        n[f"pool{block}"] = top = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    top = L.Dropout(L.ReLU(L.Convolution(top, num_output=1, kernel_size=7)))
    n.score_fr = top = L.Convolution(L.ReLU(L.Convolution(top, num_output=1, kernel_size=1)), num_output=1,
                                     kernel_size=1)
    for level in {32: [], 16: [4], 8: [4, 3]}[stride]:
        n[f"up{level}"] = up = L.Deconvolution(top, num_output=1, kernel_size=4, stride=2)
        n[f"score_pool{level}"] = L.Convolution(n[f"pool{level}"], num_output=1, kernel_size=1)
        n[f"score_pool{level}c"] = crop(n[f"score_pool{level}"], up)
        top = L.Eltwise(up, n[f"score_pool{level}c"])
    n.upscore = L.Deconvolution(top, num_output=1, kernel_size=2 * stride, stride=stride)
    n.score = crop(n.upscore, n.data)
    return n


def crops(n):
    return {lp.name: list(lp.crop_param.offset) for lp in n.to_proto().layer if lp.type == "Crop"}


def test_fcn32s_offset_is_19():
    # data -> conv1_1 (pad 100): x + 99; five 2/2 pools: (x + 99)/32 - (1/4)(1 + 1/2 + 1/4 + 1/8 + 1/16)
    # = (x + 99)/32 - 31/64; fc6 (k7): - 3; upscore (k64, s32): 32 * (...) + 63/2 = x + 99 - 31/2 - 96 + 63/2 = x + 19
    assert crops(vgg_fcn(32)) == {"score": [19]}
    assert [lp.crop_param.axis for lp in vgg_fcn(32).to_proto().layer if lp.type == "Crop"] == [2]


def test_fcn16s_and_fcn8s_offsets():
    assert crops(vgg_fcn(16)) == {"score_pool4c": [5], "score": [27]}
    assert crops(vgg_fcn(8)) == {"score_pool4c": [5], "score_pool3c": [9], "score": [31]}


def test_fcn_alexnet_offset_is_18():
    n = NetSpec()
    n.data = data(500, 500, 3)
    top = L.Convolution(n.data, num_output=1, kernel_size=11, stride=4, pad=100)
    top = L.LRN(L.Pooling(top, kernel_size=3, stride=2))
    top = L.LRN(L.Pooling(L.Convolution(top, num_output=1, kernel_size=5, pad=2), kernel_size=3, stride=2))
    for _ in range(3):
        top = L.ReLU(L.Convolution(top, num_output=1, kernel_size=3, pad=1))
    top = L.Convolution(L.Pooling(top, kernel_size=3, stride=2), num_output=1, kernel_size=6)
    n.upscore = L.Deconvolution(L.Convolution(top, num_output=1, kernel_size=1), num_output=1, kernel_size=63,
                                stride=32)
    n.score = crop(n.upscore, n.data)
    assert crops(n) == {"score": [18]}


def test_crop_helper_makes_a_crop_layer_of_its_two_tops():
    n = NetSpec()
    n.data = data()
    n.conv = L.Convolution(n.data, num_output=1, kernel_size=3, pad=3)
    n.cropped = crop(n.conv, n.data)
    lp = n.to_proto().layer[-1]
    assert (lp.type, list(lp.bottom), lp.crop_param.axis, list(lp.crop_param.offset)) == (
        "Crop", ["conv", "data"], 2, [2])
    assert crop_offsets(n.data, n.data) == (2, [0])     # only pass-through between: axis defaults to 2


def test_crop_of_a_crop_and_per_axis_offsets():
    n = NetSpec()
    n.data = data()
    n.conv = L.Convolution(n.data, num_output=1, kernel_h=3, kernel_w=3, pad_h=1, pad_w=4)
    n.narrow = L.Convolution(n.data, num_output=1, kernel_size=3, pad=[1, 2])
    n.c1 = crop(n.conv, n.narrow)            # W: conv is shifted by 3 against narrow, H: aligned
    n.c2 = crop(n.c1, n.data)                # c1 lies like narrow: W shifted by 1
    assert crops(n) == {"c1": [0, 2], "c2": [0, 1]}


# ---- the engine agrees: a coordinate ramp comes out of the cropped net equal to the one that went in ---------

def test_computed_offsets_align_pixels_in_the_engine():
    """Box-filter convs, AVE pooling and bilinear deconvolution carry an affine image (value = its position) to
    its value at each output's centre, so after the crop the output must equal the input away from the borders
    (where zero padding enters). A crop at any other offset would be off by a whole pixel."""
    n = NetSpec()
    n.data = data(48, 48)
    n.conv1 = L.Convolution(n.data, num_output=1, kernel_size=3, pad=6)
    n.pool = L.Pooling(n.conv1, pool=P.Pooling.AVE, kernel_size=2, stride=2)
    n.conv2 = L.Convolution(n.pool, num_output=1, kernel_size=3, pad=[2, 1])
    n.up = L.Deconvolution(n.conv2, num_output=1, kernel_size=4, stride=2, bias_term=False)
    n.score = crop(n.up, n.data)
    net = Net(n.to_proto(), dtype=np.float64)
    for name in ("conv1", "conv2"):
        net.params[name][0].data[...] = 1.0 / 9
    net.params["up"][0].data[...] = bilinear((1, 1, 4, 4), np.float64)
    y, x = np.mgrid[0:48, 0:48]
    ramp = (1000.0 * y + x)[None, None]
    score = net.forward(data=ramp)["score"]
    assert score.shape == ramp.shape
    np.testing.assert_allclose(score[..., 12:36, 12:36], ramp[..., 12:36, 12:36], rtol=0, atol=1e-9)
    # by hand, H: x + 5 (conv1), /2 - 1/4 (pool), + 1 (conv2), * 2 + 3/2 (up) = x + 8; W: conv2 pads one less: x + 6
    assert crops(n) == {"score": [8, 6]}


# ---- graphs with no crop -------------------------------------------------------------------------------------

def test_scale_mismatch_is_an_error():
    n = NetSpec()
    n.data = data()
    n.pool = L.Pooling(n.data, kernel_size=2, stride=2)
    with pytest.raises(NetDefinitionError, match=r"crop\('pool', 'data'\): the tops are at different scales "
                                                 r"\(top_to = 2 x top_from\)"):
        crop(n.pool, n.data)


def test_fractional_offset_is_an_error():
    n = NetSpec()
    n.data = data()
    n.conv = L.Convolution(n.data, num_output=1, kernel_size=2)     # an even kernel centres between pixels
    with pytest.raises(NetDefinitionError, match=r"misaligned by a fraction of a pixel \(shift 1/2\)"):
        crop(n.conv, n.data)


def test_negative_offset_is_an_error():
    n = NetSpec()
    n.data = data()
    n.big = L.Convolution(n.data, num_output=1, kernel_size=3, pad=4)
    with pytest.raises(NetDefinitionError, match=r"crop\('data', 'big'\): the offset would be negative \(-3\)"):
        crop(n.data, n.big)
    assert crop_offsets(n.big, n.data) == (2, [3])


def test_unconnected_tops_are_an_error():
    n = NetSpec()
    n.a, n.b = data(), data()
    with pytest.raises(NetDefinitionError, match=r"crop\('a', 'b'\): the two tops share no ancestor"):
        crop(n.a, n.b)
    n.fc = L.InnerProduct(n.a, num_output=4)
    with pytest.raises(NetDefinitionError, match=r"stopped at layers with no coordinate map: InnerProduct"):
        coord_map_from_to(n.fc, n.a)


def test_axis_mismatch_and_bad_arguments():
    n = NetSpec()
    n.data = data()
    n.conv = L.Convolution(n.data, num_output=1, kernel_size=3, axis=2)    # space from axis 3
    n.pool = L.Pooling(n.conv, kernel_size=1)                              # space from axis 2
    with pytest.raises(NetDefinitionError, match=r"crop\('pool', 'data'\): coord_map: cannot compose maps on "
                                                 r"spatial axes from 2 and from 3"):
        crop(n.pool, n.data)
    with pytest.raises(TypeError, match=r"take Tops"):
        crop(n.data, "data")
