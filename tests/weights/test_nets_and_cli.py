"""Converted weights run in a Net as the originals do (and as real Caffe did: the tiny_fcn goldens), loading
errors are clear, and `python -m weights` does what its verbs say."""
import numpy as np
import pytest

from layers import Net
from netspec import io
from tests.conftest import GOLDEN
from tests.golden import Case, assert_close
from tests.weights import toy_nets
from tests.weights.test_caffemodel import CIFAR_STATE, CIFAR_V1, LENET_V1, LENET_V2, V1_DIR, V2_DIR
from weights import caffemodel, surgery
from weights.__main__ import main

MODELS = GOLDEN / "models"


# ---- goldens from real Caffe ------------------------------------------------------------------

@pytest.mark.parametrize("source, output, deploy, golden", [
    ("tiny_fcn.caffemodel", "w.caffemodel.h5", "tiny_fcn_deploy.prototxt", "tiny_fcn_golden.h5"),
    ("tiny_fcn.caffemodel.h5", "w.caffemodel", "tiny_fcn_deploy.prototxt", "tiny_fcn_golden.h5"),
    ("tiny_fcn_v1.caffemodel", "w.caffemodel.h5", "tiny_fcn_v1_deploy.prototxt", "tiny_fcn_v1_golden.h5"),
    ("tiny_fcn_v1.caffemodel", "w.caffemodel", "tiny_fcn_v1_deploy.prototxt", "tiny_fcn_v1_golden.h5"),
], ids=["v2-to-h5", "h5-to-v2", "v1-to-h5", "v1-to-v2"])
def test_converted_tiny_fcn_matches_caffes_outputs(source, output, deploy, golden, tmp_path):
    caffemodel.convert(MODELS / source, tmp_path / output)
    case = Case(MODELS / golden)
    net = Net(str(MODELS / deploy), weights=str(tmp_path / output))
    for layer, arrays in case.params.items():
        for i, (blob, expected) in enumerate(zip(net.params[layer], arrays)):
            assert_close(blob.data, expected, f"{golden}: param {i} of '{layer}'", "exact")
    net.forward(**case.inputs)
    for name, expected in case.outputs.items():
        assert_close(net.blobs[name].data, expected, f"{golden} via {output}: blob '{name}'", "forward")


def outputs(deploy, weights, image):
    net = Net(str(deploy), weights=str(weights))
    return {name: array.copy() for name, array in net.forward(data=image).items()}


@pytest.mark.parametrize("deploy, weights, shape", [
    (V1_DIR / "lenet.prototxt", LENET_V1, (2, 1, 28, 28)),       # the deploy says 64; forward reshapes
    (V2_DIR / "lenet.prototxt", LENET_V2, (2, 1, 28, 28)),
    (V1_DIR / "cifar10_quick.prototxt", CIFAR_V1, (1, 3, 32, 32)),
], ids=["lenet-v1", "lenet-v2", "cifar10-quick-v1"])
def test_converted_real_models_give_the_originals_outputs(deploy, weights, shape, tmp_path):
    image = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    reference = outputs(deploy, weights, image)
    np.testing.assert_allclose(reference["prob"].sum(axis=1), 1, rtol=1e-5)
    caffemodel.convert(weights, tmp_path / "w.caffemodel.h5")
    caffemodel.convert(tmp_path / "w.caffemodel.h5", tmp_path / "w.caffemodel")
    for converted in ("w.caffemodel.h5", "w.caffemodel"):
        got = outputs(deploy, tmp_path / converted, image)
        np.testing.assert_array_equal(got["prob"], reference["prob"])     # same bits in, same arithmetic


def test_lenet_v1_and_v2_are_different_trainings():
    """The two LeNets come from different repositories' runs: same shapes, other values, so their outputs
    are compared with themselves only (above), not with each other."""
    v1, v2 = caffemodel.load(LENET_V1).arrays(), caffemodel.load(LENET_V2).arrays()
    assert {k: [a.shape for a in v] for k, v in v1.items()} == {k: [a.shape for a in v] for k, v in v2.items()}
    assert not np.array_equal(v1["conv1"][0], v2["conv1"][0])


def test_loading_mismatched_weights_names_layer_param_shapes_and_rename(tmp_path):
    caffemodel.convert(LENET_V1, tmp_path / "lenet.caffemodel.h5")
    for weights in (LENET_V1, tmp_path / "lenet.caffemodel.h5"):
        net = Net(str(V1_DIR / "cifar10_quick.prototxt"))
        with pytest.raises(ValueError) as error:
            net.copy_from(str(weights))
        message = str(error.value)
        for part in (weights.name, "param 0 of layer 'conv1'", "(20, 1, 5, 5)", "(32, 3, 5, 5)", "rename the layer"):
            assert part in message, message


# ---- command line -----------------------------------------------------------------------------

def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("path, fmt", [(LENET_V1, "V1 binary"), (LENET_V2, "V2 binary"),
                                       (MODELS / "tiny_fcn.caffemodel.h5", "HDF5")], ids=["v1", "v2", "h5"])
def test_cli_info_lists_layers_types_shapes_and_format(path, fmt, capsys):
    code, out, _ = run(capsys, "info", path)
    assert code == 0 and out.splitlines()[0].startswith(f"{path}: {fmt}")
    if fmt == "HDF5":
        assert "fc                   ?     7x520, 7" in out and "--net" in out
    else:
        ip1 = next(line for line in out.splitlines() if line.strip().startswith("ip1"))
        assert "InnerProduct" in ip1
        assert ("1x1x500x800 (legacy -> 500x800)" in ip1) == (fmt == "V1 binary")
        assert ("500x800, 500" in ip1) == (fmt == "V2 binary")


def test_cli_info_hdf5_with_net_and_solverstate(capsys):
    code, out, _ = run(capsys, "info", MODELS / "tiny_fcn.caffemodel.h5", "--net", MODELS / "tiny_fcn_deploy.prototxt")
    assert code == 0 and "upscore              Deconvolution  5x5x4x4" in out
    code, out, _ = run(capsys, "info", CIFAR_STATE)
    assert code == 0 and "iter 5000" in out and "history 6: 1x1x64x1024 (legacy)" in out


def test_cli_convert_and_check(tmp_path, capsys):
    code, out, _ = run(capsys, "convert", LENET_V1, tmp_path / "lenet.caffemodel.h5")
    assert code == 0 and "ip1[0]: 1x1x500x800 -> 500x800" in out and "(HDF5)" in out
    code, out, _ = run(capsys, "convert", tmp_path / "lenet.caffemodel.h5", tmp_path / "lenet.caffemodel",
                       "--net", V1_DIR / "lenet.prototxt")
    assert code == 0
    assert [(l.name, l.type) for l in io.read_caffemodel(tmp_path / "lenet.caffemodel").layer][:3] == [
        ("conv1", "Convolution"), ("pool1", "Pooling"), ("conv2", "Convolution")]     # the deploy net's order
    code, out, _ = run(capsys, "check", V1_DIR / "lenet.prototxt", tmp_path / "lenet.caffemodel")
    assert code == 0 and "4 of 4 param layers loaded" in out
    code, _, err = run(capsys, "check", V1_DIR / "cifar10_quick.prototxt", tmp_path / "lenet.caffemodel")
    assert code == 2 and err.startswith("error: ") and "'conv1'" in err and "rename the layer" in err
    code, out, _ = run(capsys, "convert", CIFAR_STATE, tmp_path / "c.solverstate.h5", "--weights", CIFAR_V1)
    assert code == 0 and "history 6: 1x1x64x1024 -> 64x1024" in out


def test_cli_reports_damaged_files_in_one_line(tmp_path, capsys):
    damaged = tmp_path / "half.caffemodel"
    data = LENET_V2.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    code, out, err = run(capsys, "info", damaged)
    assert code == 2 and out == "" and err.count("\n") == 1 and str(damaged) in err and "truncated" in err
    code, _, err = run(capsys, "convert", tmp_path / "missing.caffemodel", tmp_path / "x.h5")
    assert code == 2 and "missing.caffemodel" in err


def test_cli_help_documents_every_verb(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for verb in ("info", "convert", "check", "convolutionalize", "transplant", "interp", "handoff"):
        assert f"  {verb} " in out


def test_cli_surgery_verbs(tmp_path, capsys):
    for name, text in (("cls.prototxt", toy_nets.CLASSIFIER), ("fcn.prototxt", toy_nets.fcn(20, 16, False)),
                       ("4s.prototxt", toy_nets.NET_4S), ("2s.prototxt", toy_nets.NET_2S)):
        (tmp_path / name).write_text(text)
    Net(toy_nets.CLASSIFIER).save(tmp_path / "cls.caffemodel")
    code, out, _ = run(capsys, "convolutionalize", tmp_path / "cls.caffemodel", tmp_path / "fcn-init.caffemodel",
                       "--classifier", tmp_path / "cls.prototxt")
    assert code == 0 and "converted fc6: InnerProduct 16x100 -> Convolution 16x5x5x4" in out
    assert "dropped   fc8" in out
    code, out, _ = run(capsys, "convolutionalize", tmp_path / "cls.caffemodel", tmp_path / "fcn-init2.caffemodel",
                       "--fc", "fc6=5x5x4", "--fc", "fc7=16x1x1")
    assert code == 0
    assert io.read_caffemodel(tmp_path / "fcn-init.caffemodel") == io.read_caffemodel(tmp_path / "fcn-init2.caffemodel")
    code, out, _ = run(capsys, "check", tmp_path / "fcn.prototxt", tmp_path / "fcn-init.caffemodel")
    assert code == 0 and "score_fr: 3x12x1x1, 3  MISSING" in out

    code, out, _ = run(capsys, "transplant", tmp_path / "fcn.prototxt", tmp_path / "t.caffemodel",
                       tmp_path / "cls.caffemodel")
    assert code == 0 and "reshaped  fc6[0]: 16x100 -> 16x5x5x4" in out and "dropped   fc8" in out

    code, out, _ = run(capsys, "interp", tmp_path / "4s.prototxt", "-", tmp_path / "4s.caffemodel")
    assert code == 0 and "bilinear: upscore" in out
    w = caffemodel.load(tmp_path / "4s.caffemodel").arrays()["upscore"][0]
    np.testing.assert_array_equal(w[1, 1], surgery.upsample_filt(8).astype(np.float32))
    assert not w[0, 1].any()

    code, out, _ = run(capsys, "handoff", tmp_path / "2s.prototxt", tmp_path / "4s.caffemodel",
                       tmp_path / "2s.caffemodel")
    assert code == 0 and "zeroed    score_pool1" in out and "bilinear  upscore2" in out
    assert not caffemodel.load(tmp_path / "2s.caffemodel").arrays()["score_pool1"][0].any()
    code, _, err = run(capsys, "convolutionalize", tmp_path / "cls.caffemodel", tmp_path / "x.caffemodel",
                       "--fc", "fc6=5x5")
    assert code == 2 and "NAME=CxHxW" in err
