"""Building and sharing a solver's nets (cf. Solver::InitTrainNet, InitTestNets in caffe/solver.cpp).

train_net and test_nets read the nets a SolverParameter names (inline, or files looked for under the solver's
folder, then the working directory), merge each one's NetState as Caffe does (TRAIN with train_state; TEST with
the test_state of each test net) and build them as `net_class` with `base_dir` for the relative paths inside them.
Test nets run at the train net's weights: share_trained_layers makes them use its arrays.
"""
from typing import List, Optional

from netspec import caffe_pb2, io as netio, paths
from solver.log import get_logger

log = get_logger()


def find(path: str, what: str, where: str, base_dir: Optional[str]) -> str:
    """A file the solver names: under the solver's folder (base_dir) first, then the working directory."""
    return paths.find_file(path, [base_dir, None], f"{where}: {what}")


def build(net_param, state, net_class, base_dir):
    """A net in `state` (a merged NetState), its relative file paths looked for under base_dir first."""
    net_param = caffe_pb2.NetParameter.FromString(net_param.SerializeToString())
    net_param.ClearField("state")                 # merged into `state` already, as Caffe does
    return net_class(net_param, phase=state.phase, stages=list(state.stage), level=state.level, base_dir=base_dir)


def train_net(param, where: str, base_dir: Optional[str], net_class):
    """The train net: exactly one of train_net_param, train_net, net_param or net, in the TRAIN phase."""
    given = [f for f in ("train_net_param", "train_net", "net_param", "net") if param.HasField(f)]
    if len(given) != 1:
        raise ValueError(f"{where}: give exactly one of train_net_param, train_net, net_param or net "
                         f"(found {', '.join(given) or 'none'})")
    field = given[0]
    if field in ("train_net_param", "net_param"):
        net_param = netio.read_net(getattr(param, field))
        log.info(f"Creating training net specified in {field}.")
    else:
        path = find(getattr(param, field), field, where, base_dir)
        log.info(f"Creating training net from {field} file: {path}")
        net_param = netio.read_net(path)
    state = caffe_pb2.NetState(phase=caffe_pb2.TRAIN)
    state.MergeFrom(net_param.state)
    state.MergeFrom(param.train_state)
    return build(net_param, state, net_class, base_dir)


def test_nets(param, where: str, base_dir: Optional[str], net_class) -> list:
    """The test nets: test_net_param, test_net files, then the generic net for the remaining test_iter."""
    generic = param.HasField("net_param") or param.HasField("net")
    specific = len(param.test_net_param) + len(param.test_net)
    if len(param.test_iter) < specific or (not generic and len(param.test_iter) != specific):
        raise ValueError(f"{where}: test_iter must be given for each test net "
                         f"({specific} test nets, {len(param.test_iter)} test_iter)")
    sources = [("test_net_param", netio.read_net(n)) for n in param.test_net_param]
    sources += [(f"test_net file {n}", netio.read_net(find(n, "test_net", where, base_dir))) for n in param.test_net]
    if generic:
        net_param = (netio.read_net(param.net_param) if param.HasField("net_param")
                     else netio.read_net(find(param.net, "net", where, base_dir)))
        sources += [("net", net_param)] * (len(param.test_iter) - specific)
    if param.test_state and len(param.test_state) != len(sources):
        raise ValueError(f"{where}: test_state must be unspecified or given for each test net "
                         f"({len(sources)} test nets, {len(param.test_state)} test_state)")
    if sources and param.test_interval <= 0:
        raise ValueError(f"{where}: test nets are defined, so test_interval must be > 0 "
                         f"(a huge value, as FCN's 999999999, builds them without testing)")
    nets = []
    for i, (what, net_param) in enumerate(sources):
        state = caffe_pb2.NetState(phase=caffe_pb2.TEST)
        state.MergeFrom(net_param.state)
        if param.test_state:
            state.MergeFrom(param.test_state[i])
        log.info(f"Creating test net (#{i}) specified by {what}")
        nets.append(build(net_param, state, net_class, base_dir))
    return nets


def copy_weights(path: str, nets: List) -> None:
    """Finetune from `path` (.caffemodel or .caffemodel.h5): copied into each of `nets` by layer name."""
    paths.first_file([path], f"weights file '{path}' not found")
    log.info(f"Finetuning from {path}")
    source = netio.read_weights(path)
    for net in nets:
        net.copy_from_proto(source, origin=path)


def share_trained_layers(target, source) -> None:
    """Caffe's Net::ShareTrainedLayersWith: target's layers use the param arrays of source's same-named layers."""
    target.share_with(source)
