"""Files that are not what they should be get messages naming the real cause: a byte-order mark, a directory, an
empty or wrong-kind solver state; a path looked for in two places that are one is listed once."""
import os

import pytest

from layers import Net
from netspec import caffe_pb2, io as netio, paths
from netspec.errors import CaffeFormatError

NET = 'name: "n"\nlayer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }\n'


def test_a_byte_order_mark_or_an_invisible_space_is_named(tmp_path):
    (tmp_path / "bom.prototxt").write_bytes(b"\xef\xbb\xbf" + NET.encode())
    with pytest.raises(CaffeFormatError, match=r"bom\.prototxt:1:1: .*U\+FEFF \(a byte-order mark\)"):
        netio.read_net(str(tmp_path / "bom.prototxt"))
    (tmp_path / "nbsp.prototxt").write_text(NET.replace("top: \"data\"", "top:\u200b \"data\""))
    with pytest.raises(CaffeFormatError, match=r"nbsp\.prototxt:2:.*U\+200B \(zero width space\)"):
        netio.read_net(str(tmp_path / "nbsp.prototxt"))
    assert len(netio.read_net(NET).layer) == 1                               # and nothing when there is none


def test_a_directory_is_reported_as_a_directory_and_each_place_once(tmp_path, monkeypatch):
    (tmp_path / "d.prototxt").mkdir()
    with pytest.raises(IsADirectoryError, match=r"d\.prototxt is a directory, not a file"):
        Net(str(tmp_path / "d.prototxt"))
    for read in (netio.read_weights, netio.read_solverstate):
        with pytest.raises(IsADirectoryError, match="is a directory, not a file"):
            read(str(tmp_path / "d.prototxt"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IsADirectoryError, match=r"net 'd\.prototxt' not found as a file: .*d\.prototxt is a dir"):
        paths.find_file("d.prototxt", [str(tmp_path), None], "net")
    with pytest.raises(FileNotFoundError) as e:                                # the base is the working directory
        paths.find_file("x.prototxt", [str(tmp_path), None], "net")
    assert str(e.value).count(os.path.join(str(tmp_path), "x.prototxt")) == 1


def test_empty_or_wrong_kind_solver_states_say_what_they_are(tmp_path):
    (tmp_path / "empty.solverstate").write_bytes(b"")
    with pytest.raises(CaffeFormatError, match=r"empty\.solverstate: the file is empty \(0 bytes\), not a solver"):
        netio.read_solverstate(str(tmp_path / "empty.solverstate"))
    Net(NET).save(str(tmp_path / "w.caffemodel"))
    netio.write_caffemodel(caffe_pb2.NetParameter(name="n", layer=[caffe_pb2.LayerParameter(name="a")]),
                           str(tmp_path / "renamed.solverstate"))
    with pytest.raises(CaffeFormatError, match=r"renamed\.solverstate: holds a net's weights \(a \.caffemodel: "
                                               r"NetParameter 'n', 1 layers\), not a solver state"):
        netio.read_solverstate(str(tmp_path / "renamed.solverstate"))
    (tmp_path / "text.solverstate").write_text("iter: 3\n")
    with pytest.raises(CaffeFormatError, match=r"text\.solverstate: (holds no solver state|cannot decode).*text"):
        netio.read_solverstate(str(tmp_path / "text.solverstate"))
    state = caffe_pb2.SolverState(iter=0, learned_net="w.caffemodel")          # a real one still reads
    netio.write_solverstate(state, str(tmp_path / "ok.solverstate"))
    assert netio.read_solverstate(str(tmp_path / "ok.solverstate")).learned_net == "w.caffemodel"
