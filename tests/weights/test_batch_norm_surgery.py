"""Net surgery copies BatchNorm's statistics (mean, variance, moving-average factor) like any params: python -m
weights transplant / check / handoff / convolutionalize, binary and HDF5 sources, and the copied statistics are
what a TEST forward normalises with."""
import numpy
import pytest

from layers import Net
from netspec import io as netio
from weights import caffemodel, surgery
from weights.__main__ import main as weights_main


def net_text(classes):
    return f"""
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 dim: 5 dim: 5 }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: 4 kernel_size: 3 pad: 1 bias_term: false }} }}
layer {{ name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1" batch_norm_param {{ use_global_stats: true }} }}
layer {{ name: "scale1" type: "Scale" bottom: "bn1" top: "bn1" scale_param {{ bias_term: true }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "bn1" top: "bn1" }}
layer {{ name: "fc" type: "InnerProduct" bottom: "bn1" top: "fc" inner_product_param {{ num_output: {classes} }} }}
"""


STATISTICS = [numpy.array([0.5, -1.0, 2.0, 0.25], numpy.float32) * 3.5,       # mean * factor
              numpy.array([1.0, 0.5, 2.0, 4.0], numpy.float32) * 3.5,         # variance * factor
              numpy.array([3.5], numpy.float32)]                              # the moving-average factor


@pytest.fixture
def source(tmp_path):
    """A trained-looking net (random params, non-trivial statistics) saved as .caffemodel and .caffemodel.h5."""
    (tmp_path / "source.prototxt").write_text(net_text(3))
    net = Net(str(tmp_path / "source.prototxt"))
    rng = numpy.random.default_rng(0)
    for name, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            blob.data[...] = STATISTICS[i] if name == "bn1" else rng.normal(size=blob.shape)
    net.save(str(tmp_path / "source.caffemodel"))
    net.save(str(tmp_path / "source.caffemodel.h5"))
    return net


def blobs_in(path):
    layers = caffemodel.load(str(path)).param.layer
    return {layer.name: [netio.blob_to_array(b) for b in layer.blobs] for layer in layers if len(layer.blobs)}


@pytest.mark.parametrize("suffix", [".caffemodel", ".caffemodel.h5"])
def test_transplant_copies_the_statistics(source, tmp_path, capsys, suffix):
    (tmp_path / "new.prototxt").write_text(net_text(5))            # a new head: fc does not fit
    code = weights_main(["transplant", str(tmp_path / "new.prototxt"), str(tmp_path / "out.caffemodel"),
                         str(tmp_path / f"source{suffix}")])
    out = capsys.readouterr().out
    assert code == 0, out
    for i, shape in enumerate(("4", "4", "1")):
        assert f"copied    bn1[{i}]: {shape}" in out
    assert "skipped   fc[0]" in out
    copied = blobs_in(tmp_path / "out.caffemodel")
    for have, want in zip(copied["bn1"], STATISTICS):
        assert numpy.array_equal(have, want)
    for name in ("conv1", "scale1"):
        for have, want in zip(copied[name], source.params[name]):
            assert numpy.array_equal(have, want.data)


def test_check_and_handoff_load_the_statistics(source, tmp_path, capsys):
    prototxt = str(tmp_path / "source.prototxt")
    assert weights_main(["check", prototxt, str(tmp_path / "source.caffemodel")]) == 0
    assert "bn1: 4, 4, 1  loaded" in capsys.readouterr().out
    handoff = ["handoff", prototxt, str(tmp_path / "source.caffemodel"), str(tmp_path / "next.caffemodel")]
    assert weights_main(handoff) == 0
    assert "copied    bn1: 4, 4, 1" in capsys.readouterr().out
    for have, want in zip(blobs_in(tmp_path / "next.caffemodel")["bn1"], STATISTICS):
        assert numpy.array_equal(have, want)


def test_convolutionalize_keeps_the_statistics(source, tmp_path):
    param, report = surgery.convolutionalize(str(tmp_path / "source.caffemodel"),
                                             classifier=str(tmp_path / "source.prototxt"), drop=[])
    assert ("bn1", "4, 4, 1") in report.copied
    kept = {layer.name: layer for layer in param.layer}
    assert kept["fc"].type == "Convolution" and kept["bn1"].type == "BatchNorm"
    for have, want in zip(kept["bn1"].blobs, STATISTICS):
        assert numpy.array_equal(netio.blob_to_array(have), want)


def test_a_test_forward_normalises_with_the_copied_statistics(source, tmp_path):
    net = Net(str(tmp_path / "source.prototxt"), phase="TEST")     # fillers: all zero
    net.copy_from(str(tmp_path / "source.caffemodel.h5"))
    x = numpy.random.default_rng(1).normal(size=(2, 3, 5, 5)).astype(numpy.float32)
    net.forward(data=x, end="relu1")
    conv = net.blobs["conv1"].data
    mean, var, factor = STATISTICS
    gamma, beta = (b.data for b in net.params["scale1"])
    want = (conv - (mean / factor)[:, None, None]) / numpy.sqrt(var / factor + 1e-5)[:, None, None]
    want = numpy.maximum(want * gamma[:, None, None] + beta[:, None, None], 0)
    numpy.testing.assert_allclose(net.blobs["bn1"].data, want, rtol=1e-5, atol=1e-6)
