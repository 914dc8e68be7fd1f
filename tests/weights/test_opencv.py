"""What `python -m weights convert` writes loads in another Caffe reader: OpenCV's Caffe importer
(cv2.dnn.readNetFromCaffe, its own C++ parser of caffe.proto) gives real Caffe's outputs from our files.

OpenCV reads binary .caffemodel files only, so the HDF5 direction is checked by converting back: Caffe's
.caffemodel.h5 -> our binary, and legacy V1 -> our binary (V2 layers). opencv-python-headless is in the test
extra only: the engine never imports it."""
import numpy as np
import pytest

from tests.conftest import GOLDEN
from tests.golden import Case, assert_close
from tests.weights.test_caffemodel import CIFAR_V1, LENET_V1, LENET_V2, V1_DIR, V2_DIR
from weights import caffemodel

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the test extra) is not installed")

MODELS = GOLDEN / "models"
# OpenCV's name for each golden blob: in-place ReLU/Dropout outputs are the in-place layer's, not the blob's
OPENCV_OUTPUT = {"conv1": "relu1", "pool1": "pool1", "score": "score", "upscore": "upscore", "prob": "prob",
                 "fc": "drop_fc"}


def opencv_forward(deploy, weights, inputs, outputs):
    net = cv2.dnn.readNetFromCaffe(str(deploy), str(weights))
    for name, array in inputs.items():
        net.setInput(np.ascontiguousarray(array, dtype=np.float32), name)
    return dict(zip(outputs, net.forward(list(outputs))))


@pytest.mark.parametrize("source, deploy, golden", [
    ("tiny_fcn.caffemodel.h5", "tiny_fcn_deploy.prototxt", "tiny_fcn_golden.h5"),
    ("tiny_fcn.caffemodel", "tiny_fcn_deploy.prototxt", "tiny_fcn_golden.h5"),
    ("tiny_fcn_v1.caffemodel", "tiny_fcn_v1_deploy.prototxt", "tiny_fcn_v1_golden.h5"),
    ("tiny_fcn_v1.caffemodel", "tiny_fcn_deploy.prototxt", "tiny_fcn_v1_golden.h5"),
], ids=["h5-to-binary", "v2-via-h5", "v1-to-binary", "v1-to-binary-v2-deploy"])
def test_opencv_runs_our_binary_output_with_caffes_results(source, deploy, golden, tmp_path):
    target = tmp_path / "w.caffemodel"
    if source.endswith(".caffemodel") and "v1" not in source:      # V2 binary -> h5 -> binary: both writers
        caffemodel.convert(MODELS / source, tmp_path / "w.caffemodel.h5")
        source = tmp_path / "w.caffemodel.h5"
    caffemodel.convert(MODELS / source, target)
    case = Case(MODELS / golden)
    got = opencv_forward(MODELS / deploy, target, case.inputs, OPENCV_OUTPUT.values())
    for blob, layer in OPENCV_OUTPUT.items():
        # OpenCV's own convolution and pooling code: float32 rounding, not Caffe's operation order
        assert_close(got[layer], case.outputs[blob], f"OpenCV on {target.name} from {source}: '{blob}'", "gradient")


@pytest.mark.parametrize("deploy, weights", [
    (V1_DIR / "lenet.prototxt", LENET_V1),
    (V2_DIR / "lenet.prototxt", LENET_V2),
    (V1_DIR / "cifar10_quick.prototxt", CIFAR_V1),
], ids=["lenet-v1", "lenet-v2", "cifar10-quick-v1"])
def test_opencv_gives_the_same_outputs_from_original_and_converted_real_models(deploy, weights, tmp_path):
    caffemodel.convert(weights, tmp_path / "w.caffemodel.h5")
    caffemodel.convert(tmp_path / "w.caffemodel.h5", tmp_path / "w.caffemodel")
    net = cv2.dnn.readNetFromCaffe(str(deploy), str(weights))
    shape = (2, 1, 28, 28) if "lenet" in deploy.name else (1, 3, 32, 32)
    image = np.random.default_rng(1).uniform(0, 1, shape).astype(np.float32)
    net.setInput(image)
    original = net.forward("prob")
    assert original.shape[0] == shape[0]
    np.testing.assert_allclose(original.sum(axis=1), 1, rtol=1e-5)
    converted = cv2.dnn.readNetFromCaffe(str(deploy), str(tmp_path / "w.caffemodel"))
    converted.setInput(image)
    np.testing.assert_array_equal(converted.forward("prob"), original)     # the same weights, bit for bit
