"""netspec.splits: Caffe's InsertSplits, checked against the layer/blob names real Caffe produced."""

import h5py
import pytest

from netspec import caffe_pb2 as pb, filter_net, insert_splits, read_net
from netspec.errors import NetDefinitionError
from netspec.splits import split_blob_name, split_layer_name
from tests.conftest import SHARED

GOLDEN = SHARED / "caffe-golden"


def names(net):
    return [layer.name for layer in net.layer]


def blob_order(net):
    """Caffe's net.blobs order: each top in layer order, once (in-place tops are not new)."""
    order = []
    for layer in net.layer:
        order.extend(top for top in layer.top if top not in order)
    return order


def caffe_net_of(case):
    """The split net Caffe built for a golden case, and the names Caffe recorded for it."""
    with h5py.File(case, "r") as f:
        attrs = dict(f.attrs)
    net = insert_splits(filter_net(read_net(attrs["prototxt"]), attrs["phase"]))
    return net, attrs


@pytest.mark.parametrize("case", ["split_implicit.h5", "silence_branch.h5"])
def test_split_names_match_caffe(case):
    net, attrs = caffe_net_of(GOLDEN / case)
    assert names(net) == list(attrs["layer_names"])
    assert [layer.type for layer in net.layer] == list(attrs["layer_types"])
    assert blob_order(net) == list(attrs["blob_names"])
    split = net.layer[1]
    assert (split.name, list(split.bottom), list(split.top)) == (
        "data_data_0_split", ["data"], ["data_data_0_split_0", "data_data_0_split_1"])
    assert list(net.layer[2].bottom) == ["data_data_0_split_0"]  # consumers take tops in net order


def test_every_golden_case_gets_caffes_layers_and_blobs():
    cases = [p for p in sorted(GOLDEN.glob("*.h5")) if not p.name.startswith("solver_")]
    assert len(cases) > 60
    for case in cases:
        net, attrs = caffe_net_of(case)
        assert names(net) == list(attrs["layer_names"]), case.name
        assert blob_order(net) == list(attrs["blob_names"]), case.name


def test_no_fan_out_no_split():
    net = read_net('layer { name: "in" type: "Input" top: "x" }\n'
                   'layer { name: "r" type: "ReLU" bottom: "x" top: "x" }\n'
                   'layer { name: "s" type: "Sigmoid" bottom: "x" top: "y" }')
    assert insert_splits(net) == net


def test_split_follows_the_last_producer_of_an_in_place_blob():
    net = insert_splits(read_net("""
        layer { name: "in" type: "Input" top: "x" }
        layer { name: "conv" type: "Convolution" bottom: "x" top: "c" }
        layer { name: "relu" type: "ReLU" bottom: "c" top: "c" }
        layer { name: "a" type: "Sigmoid" bottom: "c" top: "a" }
        layer { name: "b" type: "TanH" bottom: "c" top: "b" }
        layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "sum" }
    """))
    assert names(net) == ["in", "conv", "relu", "c_relu_0_split", "a", "b", "sum"]
    assert list(net.layer[3].top) == [f"c_relu_0_split_{k}" for k in range(3)]
    assert list(net.layer[6].bottom) == ["a", "b", "c_relu_0_split_2"]


def test_loss_weighted_top_that_is_also_consumed():
    original = read_net("""
        layer { name: "in" type: "Input" top: "x" top: "label" }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" loss_weight: 2 }
        layer { name: "watch" type: "Power" bottom: "loss" top: "watched" }
    """)
    net = insert_splits(original)
    assert names(net) == ["in", "loss", "loss_loss_0_split", "watch"]
    loss, split, watch = net.layer[1], net.layer[2], net.layer[3]
    assert not len(loss.loss_weight)  # the weight moves to the split's first top
    assert list(split.top) == ["loss_loss_0_split_0", "loss_loss_0_split_1"]
    assert list(split.loss_weight) == [2.0, 0.0]
    assert list(watch.bottom) == ["loss_loss_0_split_1"]
    assert list(original.layer[1].loss_weight) == [2.0]  # pure


def test_zero_loss_weight_does_not_count_as_a_use():
    net = insert_splits(read_net("""
        layer { name: "in" type: "Input" top: "x" }
        layer { name: "p" type: "Power" bottom: "x" top: "y" loss_weight: 0 }
        layer { name: "q" type: "Power" bottom: "y" top: "z" }
    """))
    assert names(net) == ["in", "p", "q"]


def test_legacy_net_inputs_split_as_input_layer():
    legacy = pb.NetParameter(input=["data"], input_dim=[1, 3, 4, 4])
    for name in ("a", "b"):
        legacy.layer.add(name=name, type="ReLU", bottom=["data"], top=[name])
    net = insert_splits(legacy)
    assert names(net) == ["data_input_0_split", "a", "b"]
    # read_net turns the inputs into an Input layer named "input": same split names.
    upgraded = insert_splits(read_net(legacy))
    assert [n for n in names(upgraded) if n.endswith("_split")] == ["data_input_0_split"]


def test_unknown_bottom_names_layer_and_blob():
    with pytest.raises(NetDefinitionError, match=r"Unknown bottom blob 'y' \(layer 'b', bottom index 1\)"):
        insert_splits(read_net('layer { name: "a" type: "Input" top: "x" }\n'
                               'layer { name: "b" type: "Eltwise" bottom: "x" bottom: "y" top: "z" }'))


def test_name_helpers():
    assert split_layer_name("data", "input", 0) == "data_input_0_split"
    assert split_blob_name("pool4", "pool4", 0, 1) == "pool4_pool4_0_split_1"
