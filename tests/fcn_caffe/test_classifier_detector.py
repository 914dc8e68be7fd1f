"""caffe.Classifier and caffe.Detector on a small deploy net and real image files."""
import numpy as np
import pytest
from PIL import Image

from tests.fcn_caffe.test_pycaffe import write

DEPLOY = """name: 'classifier'
layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 3 dim: 3 dim: 8 dim: 8 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 4 weight_filler { type: 'gaussian' std: 0.1 } } }
layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }
"""


@pytest.fixture
def model(caffe, tmp_path):
    """(deploy prototxt, weights): an untrained net saved as a caffemodel."""
    deploy = write(tmp_path / "deploy.prototxt", DEPLOY)
    weights = str(tmp_path / "weights.caffemodel")
    caffe.Net(deploy, caffe.TEST).save(weights)
    return deploy, weights


def test_classifier_predicts_with_and_without_oversampling(caffe, model):
    classifier = caffe.Classifier(*model, image_dims=(10, 10), mean=np.array([0.5, 0.5, 0.5]), raw_scale=1.0,
                                  channel_swap=(2, 1, 0))
    images = [np.random.rand(12, 16, 3).astype(np.float32) for _ in range(2)]
    for oversample in (True, False):
        predictions = classifier.predict(images, oversample=oversample)
        assert predictions.shape == (2, 4)
        np.testing.assert_allclose(predictions.sum(axis=1), 1, rtol=1e-5)
    centre = classifier.transformer.preprocess("data", caffe.io.resize_image(images[0], (10, 10))[1:9, 1:9])
    expected = classifier.forward_all(data=np.stack([centre]))["prob"][0]
    np.testing.assert_allclose(classifier.predict(images[:1], oversample=False)[0], expected, rtol=1e-5)


def test_detector_windows_with_and_without_context(caffe, model, tmp_path):
    path = str(tmp_path / "image.png")
    Image.fromarray(np.random.randint(0, 256, size=(20, 30, 3)).astype(np.uint8)).save(path)
    windows = [np.array([0, 0, 10, 10]), np.array([5, 8, 18, 28])]
    for context_pad in (None, 2):
        detector = caffe.Detector(*model, mean=np.array([0.5, 0.5, 0.5]), raw_scale=1.0, context_pad=context_pad)
        detections = detector.detect_windows([(path, windows)])
        assert [d["filename"] for d in detections] == [path, path]
        assert all(d["prediction"].shape == (4,) for d in detections)
        assert list(detector.crop_dims) == [8, 8, 3]
