"""DataTransformer and CaffeRNG against Caffe: the generator is boost::mt19937 and the shuffle caffe::shuffle
(values printed by boost 1.74 running Caffe's util/rng.hpp shuffle), and every transform equals the element
loops of data_transformer.cpp written out here (crop offsets, mirror, (x - mean) * scale)."""
import numpy
import pytest

from layers.data_transformer import DataTransformer
from layers.rng import CaffeRNG, seed
from layers.image_data import ImageDataLayer
from netspec import caffe_pb2
from netspec import io as netio


def test_rng_is_boost_mt19937():
    mt = CaffeRNG(5489)                               # the C++ standard: the 10000th output of mt19937() is this
    assert [mt() for _ in range(10000)][-1] == 4123659995
    rand = CaffeRNG(42)
    assert [rand.rand(5) for _ in range(6)] == [2, 2, 1, 4, 1, 0]               # rng() % 5


def test_uniform_int_and_shuffle_are_boosts():
    draws = CaffeRNG(7)
    assert [draws.uniform_int(1000000007) for _ in range(6)] == [
        81935403, 244103473, 837431430, 342493821, 470738320, 776814821]
    draws = CaffeRNG(7)                               # a range one past 2^31: rejection kicks in
    assert [draws.uniform_int(2147483648) for _ in range(6)] == [
        327741615, 976413892, 1369975286, 1882953283, 1956722279, 1322904761]
    rng, items = CaffeRNG(1701), list(range(10))
    rng.shuffle(items)
    assert items == [7, 6, 8, 1, 2, 3, 5, 9, 4, 0]
    rng.shuffle(items)                                # the same generator goes on, as at Caffe's next wrap
    assert items == [0, 3, 1, 8, 7, 5, 6, 4, 9, 2]


def make(tmp_path=None, phase="TRAIN", mean=None, **transform):
    """A DataTransformer of an (unset-up) ImageData layer with this transform_param; `mean` goes to mean_file."""
    param = caffe_pb2.LayerParameter(name="images", type="ImageData")
    for key, value in transform.items():
        if key == "mean_value":
            param.transform_param.mean_value.extend(value)
        else:
            setattr(param.transform_param, key, value)
    if mean is not None:
        path = tmp_path / "mean.binaryproto"
        path.write_bytes(netio.array_to_blob(mean[None], legacy=True).SerializeToString())
        param.transform_param.mean_file = str(path)
    return DataTransformer(ImageDataLayer(param, phase))


def caffe_loops(image, scale=1.0, mean=None, mean_values=(), crop=0, h_off=0, w_off=0, mirror=False):
    """DataTransformer::Transform's loops, index for index."""
    channels, datum_height, datum_width = image.shape
    height, width = (crop, crop) if crop else (datum_height, datum_width)
    out = numpy.zeros(channels * height * width, dtype=numpy.float32)
    scale = numpy.float32(scale)
    for c in range(channels):
        for h in range(height):
            for w in range(width):
                data_index = (c * datum_height + h_off + h) * datum_width + w_off + w
                top_index = (c * height + h) * width + (width - 1 - w if mirror else w)
                element = numpy.float32(image.flat[data_index])
                if mean is not None:
                    out[top_index] = (element - numpy.float32(mean.flat[data_index])) * scale
                elif len(mean_values):
                    out[top_index] = (element - numpy.float32(mean_values[c if len(mean_values) > 1 else 0])) * scale
                else:
                    out[top_index] = element * scale
    return out.reshape(channels, height, width)


def caffe_draws(shared_seed, count, bounds):
    """What Caffe's Rand calls give: the layer seeds an mt19937 with one 32-bit draw of the shared generator."""
    layer_seed = int(numpy.random.default_rng(shared_seed).integers(2 ** 32))
    mt = numpy.random.RandomState(layer_seed)
    return [int(mt.randint(0, 2 ** 32, dtype=numpy.uint32)) % n for n in bounds[:count]]


IMAGE = numpy.random.default_rng(3).integers(0, 256, (3, 7, 9), dtype=numpy.uint8)


@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("crop", [0, 4])
@pytest.mark.parametrize("mean_kind", ["none", "file", "values", "value"])
def test_train_transform_equals_caffes_loops(tmp_path, mirror, crop, mean_kind):
    mean = numpy.random.default_rng(4).uniform(0, 255, IMAGE.shape).astype(numpy.float32)
    values = {"values": [104.0, 117.0, 123.0], "value": [110.5]}.get(mean_kind, [])
    seed(21)
    t = make(tmp_path, "TRAIN", mean if mean_kind == "file" else None, scale=0.017, mirror=mirror,
             crop_size=crop, **({"mean_value": values} if values else {}))
    got = [t(IMAGE) for _ in range(3)]
    bounds = ([2] if mirror else []) + ([7 - crop + 1, 9 - crop + 1] if crop else [])
    if not bounds:
        assert t.rng is None                        # InitRand: no generator when nothing is random
    draws = caffe_draws(21, 3 * len(bounds), bounds * 3)
    for k in range(3):
        d = draws[k * len(bounds):(k + 1) * len(bounds)]
        flip = bool(d.pop(0)) if mirror else False
        h_off, w_off = d if crop else (0, 0)
        want = caffe_loops(IMAGE, 0.017, mean if mean_kind == "file" else None, values, crop, h_off, w_off, flip)
        assert got[k].dtype == numpy.float32 and numpy.array_equal(got[k], want)


def test_test_phase_crops_the_centre_and_draws_only_for_mirror():
    t = make(phase="TEST", crop_size=4)
    assert t.rng is None
    assert numpy.array_equal(t(IMAGE), caffe_loops(IMAGE, crop=4, h_off=1, w_off=2))   # (7-4)//2, (9-4)//2
    seed(5)
    t = make(phase="TEST", crop_size=4, mirror=True)
    flips = caffe_draws(5, 4, [2] * 4)
    for flip in flips:
        assert numpy.array_equal(t(IMAGE), caffe_loops(IMAGE, crop=4, h_off=1, w_off=2, mirror=bool(flip)))


def test_mean_is_subtracted_before_scaling_and_float_data_passes_through(tmp_path):
    image = numpy.array([[[10.0, 20.0]]], dtype=numpy.float32)
    assert make(mean_value=[4.0], scale=0.5)(image).tolist() == [[[3.0, 8.0]]]       # (x - 4) * 0.5
    mean = numpy.array([[[1.0, 2.0]]], dtype=numpy.float32)
    assert make(tmp_path, mean=mean, scale=2.0)(image).tolist() == [[[18.0, 36.0]]]


def test_skip_draws_what_transforming_draws():
    seed(9)
    a = make(mirror=True, crop_size=3)
    for _ in range(5):
        a(IMAGE)
    seed(9)
    b = make(mirror=True, crop_size=3)
    b.skip(5)
    assert numpy.array_equal(a(IMAGE), b(IMAGE))


def test_shape_is_caffes_infer_blob_shape():
    assert make(crop_size=5).shape(3, 7, 9) == (3, 5, 5)
    assert make().shape(1, 7, 9) == (1, 7, 9)


def test_errors_name_the_layer_and_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="ImageData layer 'images': crop_size 8 is larger than the 7 x 9 image"):
        make(crop_size=8)(IMAGE)
    with pytest.raises(ValueError, match="either 1 mean_value or as many as channels: 3"):
        make(mean_value=[1.0, 2.0])(IMAGE)
    with pytest.raises(ValueError, match="the mean_file mean is 3 x 5 x 5 but the image is 3 x 7 x 9"):
        make(tmp_path, mean=numpy.zeros((3, 5, 5), numpy.float32))(IMAGE)
    with pytest.raises(ValueError, match="cannot specify mean_file and mean_value at the same time"):
        make(tmp_path, mean=numpy.zeros((3, 7, 9), numpy.float32), mean_value=[1.0])
    with pytest.raises(ValueError, match="cannot set both force_color and force_gray"):
        make(force_color=True, force_gray=True)
    with pytest.raises(ValueError, match="mean_file 'nowhere.binaryproto' not found"):
        make(mean_file="nowhere.binaryproto")
    (tmp_path / "bad.binaryproto").write_bytes(b"\xff\xff\xff")
    with pytest.raises(ValueError, match="is not a binaryproto BlobProto"):
        make(mean_file=str(tmp_path / "bad.binaryproto"))
