"""caffe.draw: graphs of the FCN zoo's nets (pycaffe's test_draw.py draws every net of its source tree), the
labels and styles, and the error that names the extra when pydot is missing."""
import importlib
import pathlib
import shutil
import sys

import pytest
from google.protobuf import text_format

from tests.conftest import ROOT

ZOO_NETS = sorted(p for p in (ROOT / "prototxt").rglob("*.prototxt") if "solver" not in p.name)
needs_pydot = pytest.mark.skipif(importlib.util.find_spec("pydot") is None, reason="needs pydot (the draw extra)")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot to render")


@pytest.fixture
def draw(caffe):
    return importlib.import_module(f"{caffe.__name__}.draw")


def read_net(caffe, path):
    net = caffe.proto.caffe_pb2.NetParameter()
    text_format.Merge(pathlib.Path(path).read_text(), net)
    return net


@needs_pydot
def test_graph_of_every_zoo_net(caffe, draw):
    assert ZOO_NETS
    for path in ZOO_NETS:
        net = read_net(caffe, path)
        graph = draw.get_pydot_graph(net, "LR")
        layer_nodes = [n for n in graph.get_nodes() if "(" in n.get_name()]
        assert len(layer_nodes) == len(net.layer), path


@needs_pydot
def test_labels_styles_and_phase(caffe, draw):
    net = read_net(caffe, ROOT / "prototxt" / "voc-fcn32s" / "train.prototxt")
    dot = draw.get_pydot_graph(net, "TB", display_lrm=True).to_string()
    assert '"conv1_1 (Convolution) kernel size: 3 stride: 1 pad: 100 lr mult: 1.0, 2.0"' in dot
    assert '"pool1 (Pooling MAX) kernel size: 2 stride: 2 pad: 0"' in dot
    assert "#90EE90" in dot and "#FF5050" in dot                   # in-place ReLU, convolution
    assert draw.get_layer_label(net.layer[1], "LR").startswith(r'"conv1_1\n(Convolution)\n')
    phased = caffe.proto.caffe_pb2.NetParameter()
    text_format.Merge('layer { name: "a" type: "ReLU" bottom: "x" top: "y" include { phase: TRAIN } }'
                      'layer { name: "b" type: "ReLU" bottom: "x" top: "z" }', phased)
    names = [n.get_name() for n in draw.get_pydot_graph(phased, "LR", phase=caffe.TEST).get_nodes()]
    assert not any(name.startswith('"a') for name in names) and any(name.startswith('"b') for name in names)


@needs_pydot
@needs_dot
def test_draw_net_to_file(caffe, draw, tmp_path):
    net = read_net(caffe, ROOT / "prototxt" / "voc-fcn8s" / "deploy.prototxt")
    assert draw.draw_net(net, "LR", ext="svg").lstrip().startswith(b"<?xml")
    draw.draw_net_to_file(net, str(tmp_path / "fcn8s.png"), "BT", phase=caffe.TEST)
    assert (tmp_path / "fcn8s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_pydot_the_error_names_the_extra(caffe, draw, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydot", None)          # None in sys.modules: import pydot fails
    monkeypatch.setitem(sys.modules, "pydotplus", None)
    with pytest.raises(ImportError, match=r"pip install fcn-caffe\[draw\]"):
        draw.get_pydot_graph(caffe.proto.caffe_pb2.NetParameter(), "LR")
