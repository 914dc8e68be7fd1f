"""Filter rarefaction as a net transform: FCN-32s's strides become dilations with the pads scaled, poolings become
Crops + Eltwise, the params keep their names and shapes, the coordinates are FCN's, and what cannot be rarefied is
refused with the layer named. (That the rarefied net computes shift-and-stitch's output:
tests/solver/test_shift_stitch.py.)"""
import os
from fractions import Fraction

import pytest

from netspec import caffe_pb2, io as netio
from netspec.errors import NetDefinitionError
from netspec.rarefy import geometry, input_map, rarefy

FCN32S = os.path.join(os.path.dirname(__file__), "..", "..", "prototxt", "voc-fcn32s", "deploy.prototxt")
# how many times denser than VGG16 was made for each block's input is, once pool1..pool5 have stride 1
DENSITY = {"conv1": 1, "conv2": 2, "conv3": 4, "conv4": 8, "conv5": 16, "fc": 32, "score": 32}


def by_name(param):
    return {lp.name: lp for lp in param.layer}


def test_fcn32s_convolutions_are_dilated_and_their_pads_scaled():
    original, dense = by_name(netio.read_net(FCN32S)), by_name(rarefy(FCN32S, "score_fr"))
    convs = [n for n, lp in original.items() if lp.type == "Convolution"]
    assert len(convs) == 16
    for name in convs:
        density = DENSITY[name[:5] if name.startswith("conv") else name[:2] if name.startswith("fc") else "score"]
        before, after = geometry(original[name]), geometry(dense[name])
        assert after.kernel == before.kernel and after.stride == (1, 1), name
        assert after.dilation == (density, density), name
        assert after.pad == (before.pad[0] * density,) * 2, name
    assert geometry(dense["conv1_1"]).pad == (100, 100)           # before the first stride: untouched
    assert geometry(dense["conv3_2"]).pad == (4, 4) and geometry(dense["fc6"]).dilation == (32, 32)


def test_fcn32s_poolings_lose_their_stride_and_later_ones_become_crops():
    dense = rarefy(FCN32S, "score_fr")
    layers = by_name(dense)
    assert layers["pool1"].type == "Pooling" and geometry(layers["pool1"]).stride == (1, 1)   # the first: stride 1
    for pool, density in (("pool2", 2), ("pool3", 4), ("pool4", 8), ("pool5", 16)):
        reduce = layers[pool]
        assert reduce.type == "Eltwise" and reduce.eltwise_param.operation == caffe_pb2.EltwiseParameter.MAX
        assert list(reduce.top) == [pool]                         # later layers read the same blob
        offsets = sorted(tuple(layers[tap].crop_param.offset) for tap in reduce.bottom)
        assert offsets == [(0, 0), (0, density), (density, 0), (density, density)]    # the 2 x 2 window, rarefied
        window = layers[f"{pool}_window"]
        assert geometry(window).dilation == (density, density) and window.convolution_param.num_output == 1
        assert window.param[0].lr_mult == 0


def test_params_keep_names_and_shapes():
    original, dense = by_name(netio.read_net(FCN32S)), by_name(rarefy(FCN32S, "score_fr"))
    for name, lp in original.items():
        if lp.type == "Convolution":
            assert dense[name].convolution_param.num_output == lp.convolution_param.num_output
            assert list(dense[name].param) == list(lp.param)
    assert "upscore" not in dense and "score" not in dense         # what follows score_fr is dropped
    assert dense["input"].type == "Input"


def test_rarefied_net_text_is_caffe_schema():
    """The rarefied net is written with Caffe's own fields only: it reads back identically."""
    dense = rarefy(FCN32S, "score_fr")
    assert netio.read_net(netio.to_text(dense)) == dense


def test_input_map_places_dense_positions_as_fcn_does():
    assert input_map(FCN32S, "score_fr") == ((32, 32), (Fraction(25, 2), Fraction(25, 2)))
    assert input_map(FCN32S, "pool1") == ((2, 2), (Fraction(-197, 2), Fraction(-197, 2)))
    with pytest.raises(NetDefinitionError, match="'upscore' \\(Deconvolution\\)"):
        input_map(FCN32S, "score")


def test_rarefy_from_a_named_layer_keeps_the_earlier_strides():
    dense = by_name(rarefy(FCN32S, "score_fr", layer="pool4"))
    assert geometry(dense["pool3"]).stride == (2, 2) and geometry(dense["pool4"]).stride == (1, 1)
    assert geometry(dense["conv5_1"]).dilation == (2, 2) and geometry(dense["fc6"]).dilation == (4, 4)
    assert dense["pool5"].type == "Eltwise"


def test_what_cannot_be_rarefied_is_refused_by_name():
    with pytest.raises(NetDefinitionError, match="'upscore' \\(Deconvolution\\) follows the de-strided layer 'pool1'"):
        rarefy(FCN32S, "score")
    with pytest.raises(NetDefinitionError, match="no blob 'nope'"):
        rarefy(FCN32S, "nope")
    with pytest.raises(NetDefinitionError, match="'conv1_1' \\(Convolution\\) has no stride"):
        rarefy(FCN32S, "score_fr", layer="conv1_1")
    with pytest.raises(NetDefinitionError, match="already dense"):
        rarefy(FCN32S, "conv1_2")
    padded = netio.read_net(FCN32S)
    by_name(padded)["pool3"].pooling_param.pad = 1
    with pytest.raises(NetDefinitionError, match="'pool3'.*no pad"):
        rarefy(padded, "score_fr")
