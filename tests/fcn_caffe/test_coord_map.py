"""caffe.coord_map as pycaffe's test_coord_map.py uses it: pycaffe's axis convention (the axis before the spatial
ones), numpy return values, the Crop layer crop() writes, and pycaffe's exceptions and messages for misuse."""
import random

import numpy as np
import pytest


@pytest.fixture
def cm(caffe):
    import importlib
    return importlib.import_module(f"{caffe.__name__}.coord_map")


def coord_net_spec(caffe, ks=3, stride=1, pad=0, pool=2, dstride=2, dpad=0):
    """Input -> conv -> max pool -> deconv (kernel twice its stride), the pattern every case below maps through."""
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.aux = L.Input(shape=dict(dim=[2, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=ks, stride=stride, pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool, pad=0)
    deconv_ks = [s * 2 for s in dstride] if isinstance(dstride, list) else dstride * 2
    n.deconv = L.Deconvolution(n.pool, num_output=10, kernel_size=deconv_ks, stride=dstride, pad=dpad)
    return n


def test_conv_pool_deconv(caffe, cm):
    n = coord_net_spec(caffe)
    ax, a, b = cm.coord_map_from_to(n.deconv, n.data)       # identity for 2x pool, 2x deconv
    assert (ax, a, b) == (1, 1, 0)
    n = coord_net_spec(caffe, pool=4, dstride=4)
    assert cm.coord_map_from_to(n.deconv, n.data) == (1, 1, -1)   # shift by one for 4x pool, 4x deconv


def test_return_types_are_pycaffes(caffe, cm):
    n = coord_net_spec(caffe)
    ax, a, b = cm.coord_map_from_to(n.deconv, n.data)
    assert isinstance(ax, int) and isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    assert a.shape == b.shape == (1,)
    assert cm.coord_map(n.conv.fn)[0] == 1 and cm.coord_map(n.pool.fn)[0] == 1
    assert cm.coord_map(caffe.layers.ReLU(n.conv).fn) == (None, 1, 0)


def test_pass_through_layers(caffe, cm):
    n = coord_net_spec(caffe)
    ax, a, b = cm.coord_map_from_to(n.deconv, n.data)
    n.relu = caffe.layers.ReLU(n.deconv)
    n.conv1x1 = caffe.layers.Convolution(n.relu, num_output=10, kernel_size=1, stride=1, pad=0)
    for top in [n.relu, n.conv1x1]:
        assert cm.coord_map_from_to(top, n.data) == (ax, a, b)


def test_padding(caffe, cm):
    n = coord_net_spec(caffe)
    ax, a, b = cm.coord_map_from_to(n.deconv, n.data)
    pad = random.randint(0, 10)
    for kwargs, shift in [(dict(pad=pad), -pad), (dict(dpad=pad), pad), (dict(pad=pad, dpad=pad), 0)]:
        n = coord_net_spec(caffe, **kwargs)
        _, a_pad, b_pad = cm.coord_map_from_to(n.deconv, n.data)
        assert a_pad == a and b_pad == b + shift


def test_multi_conv(caffe, cm):
    n = coord_net_spec(caffe)
    n.conv_data, n.conv_aux = caffe.layers.Convolution(n.data, n.aux, ntop=2, num_output=10, kernel_size=5,
                                                       stride=2, pad=0)
    assert cm.coord_map_from_to(n.conv_data, n.data) == cm.coord_map_from_to(n.conv_aux, n.aux)


def test_rect(caffe, cm):
    n3x3 = coord_net_spec(caffe, ks=3, stride=1, pad=0)
    n5x5 = coord_net_spec(caffe, ks=5, stride=2, pad=10)
    n3x5 = coord_net_spec(caffe, ks=[3, 5], stride=[1, 2], pad=[0, 10])
    ax_3x3, a_3x3, b_3x3 = cm.coord_map_from_to(n3x3.deconv, n3x3.data)
    ax_5x5, a_5x5, b_5x5 = cm.coord_map_from_to(n5x5.deconv, n5x5.data)
    ax_3x5, a_3x5, b_3x5 = cm.coord_map_from_to(n3x5.deconv, n3x5.data)
    assert ax_3x3 == ax_5x5 == ax_3x5
    assert (a_3x3, b_3x3, a_5x5, b_5x5) == (a_3x5[0], b_3x5[0], a_3x5[1], b_3x5[1])


def test_nd_conv(caffe, cm):
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 100, 100, 100]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=[3, 3, 3], stride=[1, 1, 1], pad=[0, 1, 2])
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=2, stride=2, pad=0)
    n.deconv = L.Deconvolution(n.pool, num_output=10, kernel_size=4, stride=2, pad=0)
    ax, a, b = cm.coord_map_from_to(n.deconv, n.data)
    assert ax == 1 and len(a) == len(b) == 3 and np.all(a == 1)
    assert b[0] - 1 == b[1] and b[1] - 1 == b[2]


def test_crop_of_crop(caffe, cm):
    n = coord_net_spec(caffe)
    offset = random.randint(0, 10)
    ax, a, b = cm.coord_map_from_to(n.deconv, n.data)
    n.crop = caffe.layers.Crop(n.deconv, n.data, axis=2, offset=offset)
    assert cm.coord_map_from_to(n.crop, n.data) == (ax, a, b + offset)


def test_crop_helper_writes_pycaffes_crop_layer(caffe, cm):
    n = coord_net_spec(caffe, pool=4, dstride=4)
    n.crop = cm.crop(n.deconv, n.data)
    layer = n.to_proto().layer[-1]
    assert layer.type == "Crop" and list(layer.bottom) == ["deconv", "data"]
    assert layer.crop_param.axis == 2 and list(layer.crop_param.offset) == [1]


def test_catch_unconnected(caffe, cm):
    n = coord_net_spec(caffe)
    n.ip = caffe.layers.InnerProduct(n.deconv, num_output=10)
    with pytest.raises(RuntimeError, match=r"^Could not compute map between tops; are they connected by spatial "
                                           r"layers\?$"):
        cm.coord_map_from_to(n.ip, n.data)


def test_catch_scale_mismatch(caffe, cm):
    n = coord_net_spec(caffe, pool=3, dstride=2)            # pool 3x but deconv 2x
    with pytest.raises(AssertionError, match=r"^scale mismatch on crop \(a = \[1\.5\]\)$"):
        cm.crop(n.deconv, n.data)


def test_catch_negative_crop(caffe, cm):
    n = coord_net_spec(caffe, dpad=10)                      # makes the output smaller than the input
    with pytest.raises(AssertionError, match=r"^cannot crop negative offset \(b = \[10\.\]\)$"):
        cm.crop(n.deconv, n.data)


def test_catch_noninteger_crop(caffe, cm):
    n = coord_net_spec(caffe, ks=4, pad=1)                   # offset 1/2
    with pytest.raises(AssertionError, match=r"^cannot crop noninteger offset"):
        cm.crop(n.deconv, n.data)


def test_layers_without_a_map_and_axis_mismatch(caffe, cm):
    n = coord_net_spec(caffe)
    with pytest.raises(cm.UndefinedMapException):
        cm.coord_map(caffe.layers.InnerProduct(n.data, num_output=1).fn)
    with pytest.raises(cm.AxisMismatchException):
        cm.compose((1, 1, 0), (2, 1, 0))
    assert cm.inverse((1, np.array([2.0]), np.array([1.0])))[1:] == (0.5, -0.5)


def test_beyond_pycaffe_kernel_h_w_and_channel_concat_map(caffe, cm):
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 10, 10]))
    n.conv = L.Convolution(n.data, num_output=2, kernel_h=3, kernel_w=5, pad_h=1, pad_w=2)
    n.conv2 = L.Convolution(n.data, num_output=2, kernel_h=3, kernel_w=5, pad_h=1, pad_w=2)
    n.both = L.Concat(n.conv, n.conv2)
    ax, a, b = cm.coord_map_from_to(n.both, n.data)        # pycaffe: an AssertionError, then a RuntimeError
    assert ax == 1 and list(a) == [1, 1] and list(b) == [0, 0]
