"""Inference on the real VOC image with a tiny random deploy net, and the palette helpers."""
import numpy
import pytest
from PIL import Image

from layers import Net, rng
from solver.infer import VOC_MEAN, main
from solver.palette import colorize, decode_color, label_image, overlay, voc_palette
from tests.conftest import FIXTURES

JPG = FIXTURES / "voc" / "JPEGImages" / "2007_000129.jpg"

DEPLOY = """name: "tiny"
layer {{ name: "input" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 3 dim: 4 dim: 4 }} }} }}
layer {{ name: "score" type: "Convolution" bottom: "data" top: "score"
  convolution_param {{ num_output: {n} kernel_size: 1
    weight_filler {{ type: "gaussian" std: 0.1 }} bias_filler {{ type: "gaussian" std: 1 }} }} }}
"""


def tiny_net(tmp_path, n):
    deploy = tmp_path / f"deploy{n}.prototxt"
    deploy.write_text(DEPLOY.format(n=n))
    rng.seed(n)
    net = Net(str(deploy))
    weights = tmp_path / f"tiny{n}.caffemodel"
    net.save(str(weights))
    w, b = net.params["score"][0].data[:, :, 0, 0].astype(numpy.float64), net.params["score"][1].data
    return deploy, weights, w, b


def expected_label(path, w, b, mean=VOC_MEAN):
    """The 1x1-conv net by hand: scores = W (BGR - mean) + b per pixel, then the argmax over classes."""
    bgr = numpy.array(Image.open(path).convert("RGB"), dtype=numpy.float64)[:, :, ::-1] - numpy.array(mean)
    return numpy.argmax(bgr @ w.T + b, axis=2)


def test_infer_writes_palette_label_and_overlay(tmp_path, capsys):
    deploy, weights, w, b = tiny_net(tmp_path, 21)
    results = main([str(deploy), str(weights), str(JPG), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "2007_000129.jpg: 334x500" in out and " ms" in out
    label_im = Image.open(tmp_path / "out" / "2007_000129.png")
    assert label_im.mode == "P" and label_im.size == (334, 500)
    numpy.testing.assert_array_equal(numpy.array(label_im.getpalette()[:768]).reshape(256, 3), voc_palette(256))
    label = numpy.array(label_im)
    expected = expected_label(JPG, w, b)
    numpy.testing.assert_array_equal(label, expected)
    assert len(numpy.unique(label)) > 1
    vis = Image.open(tmp_path / "out" / "2007_000129_overlay.jpg")
    assert vis.size == (334, 500) and vis.mode == "RGB"
    assert results[0][3] > 0


def test_infer_any_size_and_many_classes(tmp_path):
    rng = numpy.random.default_rng(8)
    images = []
    for k, (h, w) in enumerate([(7, 11), (13, 5)]):
        images.append(tmp_path / f"im{k}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=numpy.uint8)).save(images[-1])
    Image.fromarray(rng.integers(0, 256, (6, 9), dtype=numpy.uint8)).save(tmp_path / "grey.png")   # grey input
    images.append(tmp_path / "grey.png")
    deploy, weights, w, b = tiny_net(tmp_path, 300)
    main([str(deploy), str(weights), *map(str, images), "--out", str(tmp_path / "o"), "--mean", "1,2,3"])
    for path in images:
        saved = Image.open(tmp_path / "o" / f"{path.stem}.png")
        assert saved.mode.startswith("I")                  # beyond 256 classes: 16-bit indices
        label = numpy.array(saved)
        assert label.shape == numpy.array(Image.open(path)).shape[:2]
        numpy.testing.assert_array_equal(label, expected_label(path, w, b, (1, 2, 3)))


def test_voc_palette_entries_and_generalisation():
    p = voc_palette(256)
    assert p[0].tolist() == [0, 0, 0] and p[1].tolist() == [128, 0, 0] and p[2].tolist() == [0, 128, 0]
    assert p[15].tolist() == [192, 128, 128] and p[255].tolist() == [224, 224, 192]
    big = voc_palette(5000)
    numpy.testing.assert_array_equal(big[:256], p)
    assert len(numpy.unique(big, axis=0)) == 5000          # distinct colours past 256 classes
    # the VOC label files carry exactly this palette
    png = Image.open(FIXTURES / "voc" / "SegmentationClass" / "2007_000129.png")
    numpy.testing.assert_array_equal(numpy.array(png.getpalette()[:768]).reshape(256, 3), p)


def test_colorize_decode_round_trip_and_errors():
    label = numpy.random.default_rng(9).choice([0, 1, 7, 20, 255], (6, 5))
    numpy.testing.assert_array_equal(decode_color(colorize(label)), label)
    numpy.testing.assert_array_equal(numpy.array(label_image(label)), label)
    rgb = colorize(label)
    rgb[0, 0] = (1, 2, 3)
    with pytest.raises(ValueError, match=r"1 pixel\(s\) have 1 colour\(s\) not in the palette, e.g. \(1, 2, 3\)"):
        decode_color(rgb)


def test_overlay_blends_only_foreground():
    image = numpy.full((2, 2, 3), 100, dtype=numpy.uint8)
    label = numpy.array([[0, 1], [15, 0]])
    vis = overlay(image, label, alpha=0.5)
    assert vis[0, 0].tolist() == [100, 100, 100] and vis[1, 1].tolist() == [100, 100, 100]
    assert vis[0, 1].tolist() == [114, 50, 50]             # (100 + 128) / 2, 100 / 2, 100 / 2
    assert vis[1, 0].tolist() == [146, 114, 114]
