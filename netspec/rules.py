"""Phase/level/stage filtering of a net, as Caffe's Net::FilterNet and Net::StateMeetsRule.

A layer with no include/exclude rules is always kept. With exclude rules it is dropped when the
net state meets ANY of them; with include rules it is kept only when the state meets ANY of them.
A rule is met when every condition it sets holds: phase equal, min_level <= level <= max_level,
ALL of its `stage`s present and NONE of its `not_stage`s present.
"""
from netspec import caffe_pb2 as pb
from netspec.errors import NetDefinitionError

_PHASES = {"TRAIN": pb.TRAIN, "TEST": pb.TEST}


def state_meets_rule(state, rule, layer_name=""):
    """True when NetState `state` meets NetStateRule `rule` (`layer_name` is for messages only)."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(stage not in stages for stage in rule.stage):
        return False
    return not any(stage in stages for stage in rule.not_stage)


def layer_included(state, layer):
    """Whether LayerParameter `layer` belongs to a net in NetState `state` (FilterNet's test)."""
    if len(layer.include) and len(layer.exclude):
        raise NetDefinitionError(f"layer '{layer.name}': specify either include rules or exclude rules; not both")
    if len(layer.include):
        return any(state_meets_rule(state, rule, layer.name) for rule in layer.include)
    return not any(state_meets_rule(state, rule, layer.name) for rule in layer.exclude)


def filter_net(net_param, phase, stages=(), level=0):
    """Return a copy of `net_param` holding only the layers of the given state.

    As Caffe's Net(file, phase, level, stages) constructor: the net's `state` gets `phase`
    (caffe_pb2.TRAIN/TEST or "TRAIN"/"TEST") and `level`, and `stages` are added to any stages
    the net already declares; then FilterNet keeps the matching layers, and each kept layer
    without its own `phase` inherits the net's (Net::Init does this before creating layers).
    """
    out = pb.NetParameter()
    out.CopyFrom(net_param)
    out.state.phase = _phase(phase)
    out.state.stage.extend([stages] if isinstance(stages, str) else stages)
    out.state.level = level
    out.ClearField("layer")
    for layer in net_param.layer:
        if layer_included(out.state, layer):
            kept = out.layer.add()
            kept.CopyFrom(layer)
            if not kept.HasField("phase"):
                kept.phase = out.state.phase
    return out


def _phase(phase):
    if isinstance(phase, str):
        if phase.upper() not in _PHASES:
            raise ValueError(f"unknown phase {phase!r}; use 'TRAIN' or 'TEST'")
        return _PHASES[phase.upper()]
    if phase not in (pb.TRAIN, pb.TEST):
        raise ValueError(f"unknown phase {phase!r}; use caffe_pb2.TRAIN ({pb.TRAIN}) or caffe_pb2.TEST ({pb.TEST})")
    return phase
