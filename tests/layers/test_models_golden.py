"""Saved Caffe models: build the Net from the model's deploy prototxt, load the weights file the golden case names
(V2 binary, V2 HDF5, legacy V1 binary) with copy_from, and compare the params Caffe held and its forward outputs."""
import h5py
import numpy
import pytest

from layers import Net
from tests.conftest import GOLDEN
from tests.golden import Case, assert_close

MODELS = GOLDEN / "models"
CASES = [
    ("tiny_fcn_golden.h5", "tiny_fcn_deploy.prototxt", "weights_file"),
    ("tiny_fcn_golden.h5", "tiny_fcn_deploy.prototxt", "weights_file_hdf5"),
    ("tiny_fcn_v1_golden.h5", "tiny_fcn_v1_deploy.prototxt", "weights_file"),
]


@pytest.mark.parametrize("golden, deploy, weights_attr", CASES, ids=["v2", "v2-hdf5", "v1"])
def test_saved_model_forward_matches_caffe(golden, deploy, weights_attr, device):
    case = Case(MODELS / golden)
    with h5py.File(MODELS / golden, "r") as f:
        net_outputs = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["net_outputs"]]
        layer_names = list(f.attrs["layer_names"])
    net = Net(str(MODELS / deploy), phase=case.phase)
    assert [l.name for l in net.layers] == layer_names          # the V1 upgrade names the input layer "input"
    assert sorted(net.outputs) == sorted(net_outputs)
    net.copy_from(str(MODELS / case.attrs[weights_attr]))
    for layer, arrays in case.params.items():
        for i, (blob, expected) in enumerate(zip(net.params[layer], arrays)):
            assert_close(blob.data, expected, f"{golden}: param {i} of layer '{layer}'", "exact")
    if device == "gpu":
        net.to_gpu()
    out = net.forward(**case.inputs)
    assert sorted(out) == sorted(net_outputs)
    for name, expected in case.outputs.items():
        kind = "exact" if name == "data" else "forward"
        assert_close(net.blobs[name].data, expected, f"{golden}: forward blob '{name}'", kind)
    # the prob map is a softmax over the 5 classes, upsampled 10x13 -> 22x28 by the k4 s2 deconvolution
    assert out["prob"].shape == (2, 5, 22, 28)
    numpy.testing.assert_allclose(numpy.asarray(net.blobs["prob"].data.sum(axis=1).tolist()), 1, rtol=1e-5)
