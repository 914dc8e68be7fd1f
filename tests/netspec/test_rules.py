"""netspec.rules: Caffe's Net::FilterNet / StateMeetsRule."""

import pytest

from netspec import caffe_pb2 as pb, filter_net, read_net, state_meets_rule
from netspec.errors import NetDefinitionError
from tests.conftest import SHARED

NET = read_net("""
    name: "rules"
    layer { name: "always" type: "Input" top: "x" }
    layer { name: "train_only" type: "ReLU" bottom: "x" top: "x" include { phase: TRAIN } }
    layer { name: "test_only" type: "ReLU" bottom: "x" top: "x" include { phase: TEST } }
    layer { name: "not_test" type: "ReLU" bottom: "x" top: "x" exclude { phase: TEST } }
    layer { name: "level_1_to_2" type: "ReLU" bottom: "x" top: "x" include { min_level: 1 max_level: 2 } }
    layer { name: "deploy_stage" type: "ReLU" bottom: "x" top: "x" include { stage: "deploy" } }
    layer { name: "a_and_b" type: "ReLU" bottom: "x" top: "x" include { stage: "a" stage: "b" } }
    layer { name: "a_or_b" type: "ReLU" bottom: "x" top: "x" include { stage: "a" } include { stage: "b" } }
    layer { name: "not_deploy" type: "ReLU" bottom: "x" top: "x" include { not_stage: "deploy" } }
    layer { name: "fixed_phase" type: "Dropout" bottom: "x" top: "x" phase: TRAIN }
""")


def names(net):
    return [layer.name for layer in net.layer]


@pytest.mark.parametrize("phase, stages, level, expected", [
    (pb.TRAIN, (), 0, ["always", "train_only", "not_test", "not_deploy", "fixed_phase"]),
    ("TEST", (), 0, ["always", "test_only", "not_deploy", "fixed_phase"]),
    ("test", (), 1, ["always", "test_only", "level_1_to_2", "not_deploy", "fixed_phase"]),
    (pb.TEST, (), 3, ["always", "test_only", "not_deploy", "fixed_phase"]),
    (pb.TEST, ("deploy",), 0, ["always", "test_only", "deploy_stage", "fixed_phase"]),
    (pb.TEST, ("a",), 0, ["always", "test_only", "a_or_b", "not_deploy", "fixed_phase"]),
    (pb.TEST, ["b", "a"], 0, ["always", "test_only", "a_and_b", "a_or_b", "not_deploy", "fixed_phase"]),
    (pb.TEST, "deploy", 0, ["always", "test_only", "deploy_stage", "fixed_phase"]),
])
def test_filter_net(phase, stages, level, expected):
    filtered = filter_net(NET, phase, stages, level)
    assert names(filtered) == expected
    assert filtered.state.phase == (pb.TEST if str(phase).upper() == "TEST" or phase == pb.TEST else pb.TRAIN)
    assert filtered.state.level == level


def test_layers_inherit_the_net_phase_unless_set():
    filtered = filter_net(NET, pb.TEST)
    phases = {layer.name: layer.phase for layer in filtered.layer}
    assert phases["always"] == pb.TEST and phases["fixed_phase"] == pb.TRAIN


def test_filter_net_is_pure_and_keeps_net_fields():
    net = pb.NetParameter()
    net.CopyFrom(NET)
    net.force_backward = True
    net.state.stage.append("a")  # stages declared in the net add to the ones passed in
    filtered = filter_net(net, pb.TEST, stages=("b",))
    assert list(filtered.state.stage) == ["a", "b"] and filtered.force_backward
    assert "a_and_b" in names(filtered)
    assert len(net.layer) == len(NET.layer) and not net.layer[0].HasField("phase")


def test_include_and_exclude_together_is_an_error():
    net = read_net('layer { name: "both" type: "ReLU" include { phase: TRAIN } exclude { phase: TEST } }')
    with pytest.raises(NetDefinitionError, match="layer 'both'.*not both"):
        filter_net(net, pb.TRAIN)


def test_bad_phase():
    with pytest.raises(ValueError, match="TRAIN"):
        filter_net(NET, "validation")
    with pytest.raises(ValueError, match="TEST"):
        filter_net(NET, 7)


def test_state_meets_rule_conditions():
    state = pb.NetState(phase=pb.TRAIN, level=2, stage=["x", "y"])
    assert state_meets_rule(state, pb.NetStateRule())
    assert state_meets_rule(state, pb.NetStateRule(phase=pb.TRAIN, min_level=2, max_level=2, stage=["y"]))
    assert not state_meets_rule(state, pb.NetStateRule(phase=pb.TEST))
    assert not state_meets_rule(state, pb.NetStateRule(min_level=3))
    assert not state_meets_rule(state, pb.NetStateRule(max_level=1))
    assert not state_meets_rule(state, pb.NetStateRule(stage=["x", "z"]))
    assert not state_meets_rule(state, pb.NetStateRule(not_stage=["q", "y"]))
    assert state_meets_rule(state, pb.NetStateRule(min_level=0), "layer")  # 0 set explicitly still counts


LENET = SHARED / "fixtures/caffemodel/v1_everpeace_caffe_2014/lenet_train_test.prototxt"


def test_lenet_train_test_phases():
    net = read_net(LENET)
    train, test = filter_net(net, pb.TRAIN), filter_net(net, pb.TEST)
    assert [layer.data_param.batch_size for layer in train.layer if layer.type == "Data"] == [64]
    assert [layer.data_param.batch_size for layer in test.layer if layer.type == "Data"] == [100]
    assert "Accuracy" not in [layer.type for layer in train.layer]
    assert "Accuracy" in [layer.type for layer in test.layer]
