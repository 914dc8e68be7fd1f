"""layers.image_io against OpenCV itself: decoding as cv::imread/imdecode (colour, grey, unchanged) and
cv::resize INTER_LINEAR, bit for bit (cv2 is in the test extra)."""
import numpy
import pytest
from PIL import Image

from layers import image_io

cv2 = pytest.importorskip("cv2")

FLAGS = {"color": cv2.IMREAD_COLOR, "gray": cv2.IMREAD_GRAYSCALE, "unchanged": cv2.IMREAD_UNCHANGED}


def opencv(path, mode):
    image = cv2.imdecode(numpy.fromfile(str(path), dtype=numpy.uint8), FLAGS[mode])
    return image if image.ndim == 3 else image[:, :, None]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Files of every kind Caffe users feed: PNG (RGB, RGBA, grey, grey+alpha, palette with and without
    transparency, 1-bit, 16-bit grey), JPEG (4:2:0, 4:4:4, grey, EXIF-rotated), BMP and TIFF."""
    folder = tmp_path_factory.mktemp("images")
    rng = numpy.random.default_rng(0)
    noise = rng.integers(0, 256, (37, 53, 3), dtype=numpy.uint8)
    y, x = numpy.mgrid[0:40, 0:56]
    smooth = numpy.stack([x * 4 % 256, y * 6 % 256, (x + 2 * y) % 256], axis=-1).astype(numpy.uint8)
    rgb = Image.fromarray(noise)
    rgb.save(folder / "rgb.png")
    Image.fromarray(numpy.dstack([noise, noise[:, :, :1]])).save(folder / "rgba.png")
    Image.fromarray(noise[:, :, 0]).save(folder / "grey.png")
    Image.fromarray(noise[:, :, :2].copy(), "LA").save(folder / "grey_alpha.png")
    rgb.convert("P", palette=Image.ADAPTIVE).save(folder / "palette.png")
    rgb.convert("P", palette=Image.ADAPTIVE).save(folder / "palette_alpha.png", transparency=3)
    Image.fromarray(noise[:, :, 0] > 127).save(folder / "bits.png")
    Image.fromarray(noise[:, :, 0].astype(numpy.uint16) * 257 + 3).save(folder / "grey16.png")
    Image.fromarray(smooth).save(folder / "photo.jpg", quality=90)
    Image.fromarray(smooth).save(folder / "photo444.jpg", quality=90, subsampling=0)
    Image.fromarray(smooth[:, :, 1]).save(folder / "grey.jpg", quality=90)
    rotated = Image.fromarray(smooth)
    exif = rotated.getexif()
    exif[0x0112] = 6                                   # "rotate 90 CW to view"
    rotated.save(folder / "rotated.jpg", exif=exif.tobytes())
    rgb.save(folder / "rgb.bmp")
    rgb.save(folder / "rgb.tif")
    return folder


NAMES = ["rgb.png", "rgba.png", "grey.png", "grey_alpha.png", "palette.png", "palette_alpha.png", "bits.png",
         "grey16.png", "photo.jpg", "photo444.jpg", "grey.jpg", "rotated.jpg", "rgb.bmp", "rgb.tif"]


@pytest.mark.parametrize("name,mode", [(n, m) for n in NAMES for m in ("color", "gray", "unchanged")
                                       if (n, m) != ("grey16.png", "unchanged")])     # uint16: the next test
def test_decoding_equals_opencv(images, name, mode):
    want = opencv(images / name, mode)
    for source in (images / name, (images / name).read_bytes()):      # imread and imdecode
        got = image_io.read(source if isinstance(source, bytes) else str(source), mode)
        assert got.dtype == numpy.uint8 and got.shape == want.shape
        assert numpy.array_equal(got, want)


def test_sixteen_bit_grey_unchanged_keeps_its_samples(images):
    got = image_io.read(str(images / "grey16.png"), "unchanged")
    assert got.dtype == numpy.uint16 and numpy.array_equal(got, opencv(images / "grey16.png", "unchanged"))


def test_exif_rotation_applies_except_unchanged(images):
    assert image_io.read(str(images / "rotated.jpg"), "color").shape == (56, 40, 3)
    assert image_io.read(str(images / "rotated.jpg"), "unchanged").shape == (40, 56, 3)


def test_unreadable_sources_raise_oserror(tmp_path):
    with pytest.raises(OSError, match="no such file"):
        image_io.read(str(tmp_path / "missing.png"))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(OSError, match="cannot decode"):
        image_io.read(str(tmp_path / "bad.png"))
    with pytest.raises(OSError, match="cannot decode"):
        image_io.read(b"\x89PNG\r\n\x1a\n truncated")


SIZES = [(10, 13, 7, 5), (10, 13, 23, 31), (37, 41, 64, 80), (64, 48, 32, 24), (50, 50, 33, 77), (5, 7, 100, 3),
         (1, 1, 5, 7), (3, 200, 2, 3), (120, 160, 227, 227), (17, 17, 17, 17), (9, 30, 9, 11)]


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("size", SIZES)
def test_resize_linear_equals_cv2(size, channels):
    h, w, new_h, new_w = size
    rng = numpy.random.default_rng(h * 1000 + w + channels)
    image = rng.integers(0, 256, (h, w, channels), dtype=numpy.uint8)
    if channels == 1:
        image = image[:, :, 0]
    assert numpy.array_equal(image_io.resize_linear(image, new_w, new_h), cv2.resize(image, (new_w, new_h)))


def test_resize_linear_random_sizes_equal_cv2():
    rng = numpy.random.default_rng(7)
    for _ in range(60):
        h, w, new_h, new_w = (int(v) for v in rng.integers(1, 70, 4))
        image = rng.integers(0, 256, (h, w, 3), dtype=numpy.uint8)
        assert numpy.array_equal(image_io.resize_linear(image, new_w, new_h), cv2.resize(image, (new_w, new_h))), \
            (h, w, new_h, new_w)
