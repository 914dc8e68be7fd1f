"""caffe.io as pycaffe's test_io.py uses it, and the rest: datums, the Transformer, images (real files), resizing
and oversampling."""
import numpy as np
import pytest
from PIL import Image


def test_blobproto_in_the_old_format(caffe):
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.data.extend(list(np.zeros((10, 10)).flatten()))
    blob.num, blob.channels, blob.height, blob.width = (1, 1, 10, 10)
    assert caffe.io.blobproto_to_array(blob).shape == (1, 1, 10, 10)


def test_blobproto_in_the_new_format(caffe):
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.data.extend(list(np.zeros((10, 10)).flatten()))
    blob.shape.dim.extend([10, 10])
    assert caffe.io.blobproto_to_array(blob).shape == (10, 10)


def test_blobproto_without_a_shape(caffe):
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.data.extend(list(np.zeros((10, 10)).flatten()))
    with pytest.raises(ValueError):
        caffe.io.blobproto_to_array(blob)


def test_blobproto_scalar(caffe):
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.data.extend([123.0])
    assert caffe.io.blobproto_to_array(blob) == 123


def test_array_blobproto_round_trips_with_diff(caffe):
    x = np.random.rand(2, 3, 4).astype(np.float32)
    blob = caffe.io.array_to_blobproto(x, diff=2 * x)
    np.testing.assert_allclose(caffe.io.blobproto_to_array(blob), x)
    np.testing.assert_allclose(caffe.io.blobproto_to_array(blob, return_diff=True), 2 * x)


def test_blobprotovector_round_trips_through_a_mean_file(caffe, tmp_path):
    arrays = [np.random.rand(1, 3, 2, 2), np.random.rand(4)]
    path = tmp_path / "means.binaryproto"
    path.write_bytes(caffe.io.arraylist_to_blobprotovector_str(arrays))
    for mine, back in zip(arrays, caffe.io.blobprotovector_str_to_arraylist(path.read_bytes())):
        np.testing.assert_allclose(back, mine)


def test_datum_without_a_label_is_smaller(caffe):
    with_label = caffe.io.array_to_datum(np.ones((10, 10, 3)), label=1)
    without = caffe.io.array_to_datum(np.ones((10, 10, 3)))
    assert len(with_label.SerializeToString()) > len(without.SerializeToString())


def test_datum_round_trips(caffe):
    image = np.random.randint(0, 256, size=(3, 4, 5)).astype(np.uint8)
    datum = caffe.io.array_to_datum(image, label=7)
    assert datum.data and not datum.float_data and datum.label == 7
    back = caffe.io.datum_to_array(caffe.proto.caffe_pb2.Datum.FromString(datum.SerializeToString()))
    assert back.dtype == np.uint8 and (back == image).all()
    floats = np.random.rand(3, 4, 5)
    np.testing.assert_allclose(caffe.io.datum_to_array(caffe.io.array_to_datum(floats)), floats)
    with pytest.raises(ValueError):
        caffe.io.array_to_datum(np.zeros((2, 2)))


@pytest.fixture
def transformer(caffe):
    t = caffe.io.Transformer({"data": (1, 3, 8, 6)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", np.array([104.0, 117.0, 123.0]))
    t.set_input_scale("data", 0.5)
    return t


def test_transformer_preprocess_and_deprocess(transformer):
    image = np.random.rand(8, 6, 3).astype(np.float32)
    caffe_in = transformer.preprocess("data", image)
    expected = (image.transpose(2, 0, 1)[::-1] * 255 - np.array([104.0, 117.0, 123.0])[:, None, None]) * 0.5
    np.testing.assert_allclose(caffe_in, expected, rtol=1e-5)
    np.testing.assert_allclose(transformer.deprocess("data", caffe_in), image, rtol=1e-5, atol=1e-5)


def test_transformer_resizes_to_the_input(transformer):
    assert transformer.preprocess("data", np.random.rand(16, 12, 3)).shape == (3, 8, 6)


def test_transformer_checks(caffe, transformer):
    with pytest.raises(Exception, match="is not one of the net inputs"):
        transformer.set_raw_scale("label", 1)
    with pytest.raises(Exception, match="Transpose order"):
        transformer.set_transpose("data", (1, 0))
    with pytest.raises(Exception, match="Channel swap"):
        transformer.set_channel_swap("data", (1, 0))
    with pytest.raises(ValueError, match="Mean channels incompatible"):
        transformer.set_mean("data", np.zeros(4))
    with pytest.raises(ValueError, match="Mean shape incompatible"):
        transformer.set_mean("data", np.zeros((3, 4, 4)))
    transformer.set_mean("data", np.zeros((3, 8, 6)))


def test_load_image(caffe, tmp_path):
    rgb = np.random.randint(0, 256, size=(5, 7, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full((5, 7), 9, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "gray.png")
    image = caffe.io.load_image(str(tmp_path / "rgb.png"))
    assert image.dtype == np.float32 and image.shape == (5, 7, 3)
    np.testing.assert_allclose(image, rgb / 255.0, rtol=1e-6)
    np.testing.assert_allclose(caffe.io.load_image(str(tmp_path / "rgba.png")), image)        # alpha dropped
    gray = caffe.io.load_image(str(tmp_path / "gray.png"))
    assert gray.shape == (5, 7, 3) and (gray[:, :, 0] == gray[:, :, 2]).all()
    assert caffe.io.load_image(str(tmp_path / "gray.png"), color=False).shape == (5, 7, 1)
    luma = caffe.io.load_image(str(tmp_path / "rgb.png"), color=False)[:, :, 0]
    np.testing.assert_allclose(luma, (rgb / 255.0) @ [0.2125, 0.7154, 0.0721], rtol=1e-5)


def test_resize_image(caffe):
    im = np.random.rand(4, 6, 3).astype(np.float32)
    out = caffe.io.resize_image(im, (8, 12))
    assert out.shape == (8, 12, 3) and out.dtype == np.float32
    assert im.min() - 1e-6 <= out.min() and out.max() <= im.max() + 1e-6
    np.testing.assert_allclose(caffe.io.resize_image(im, (4, 6)), im, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(caffe.io.resize_image(im, (2, 3), interp_order=0), im[1::2, 1::2], rtol=1e-6)
    assert (caffe.io.resize_image(np.full((3, 3, 1), 5.0), (6, 2)) == 5).all()
    assert caffe.io.resize_image(np.random.rand(4, 4, 5), (8, 8)).shape == (8, 8, 5)


def test_oversample(caffe):
    images = [np.arange(6 * 8 * 2, dtype=np.float32).reshape(6, 8, 2) + 1000 * k for k in range(2)]
    crops = caffe.io.oversample(images, (4, 4))
    assert crops.shape == (20, 4, 4, 2)
    im = images[1]
    np.testing.assert_array_equal(crops[10], im[:4, :4])          # the corners, then the centre
    np.testing.assert_array_equal(crops[13], im[2:, 4:])
    np.testing.assert_array_equal(crops[14], im[1:5, 2:6])
    np.testing.assert_array_equal(crops[15:], crops[10:15, :, ::-1])   # then the mirrors
