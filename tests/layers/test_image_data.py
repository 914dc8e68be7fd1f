"""ImageData against Caffe's image_data_layer.cpp on real files: images read as cv2.imread reads them (and resized
as cv2.resize), labels as float, lines in order with wrap-around, caffe::shuffle at setup and at every wrap,
rand_skip, transform_param, fast_forward equal to forwards, and errors that name the list file, line and image."""
import numpy
import pytest
from PIL import Image

from layers import Net
from layers.rng import CaffeRNG, seed

cv2 = pytest.importorskip("cv2")


def net_text(source, batch=2, root="", transform="", **param):
    extra = "".join(f" {k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in param.items())
    return (f'layer {{ name: "images" type: "ImageData" top: "data" top: "label" {transform} '
            f'image_data_param {{ source: "{source}" batch_size: {batch} root_folder: "{root}"{extra} }} }}')


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """Five 6 x 8 images (PNG, JPEG, BMP; one name with a space) in img/, listed in list.txt with labels."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "img").mkdir()
    rng = numpy.random.default_rng(0)
    names = ["a.png", "b c.png", "d.jpg", "e.bmp", "f.png"]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=numpy.uint8)).save(tmp_path / "img" / name)
    (tmp_path / "list.txt").write_text("".join(f"{n} {10 + i}\n" for i, n in enumerate(names)) + "\n")
    return tmp_path


def caffe_image(path, color=True, size=None):
    """cv::imread (+ cv::resize), HxWxC -> CxHxW float32: what Caffe transforms."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    image = cv2.resize(image, size) if size else image
    return (image if image.ndim == 3 else image[:, :, None]).transpose(2, 0, 1).astype(numpy.float32)


def forward(net):
    net.forward()
    return net.blobs["data"].data.copy(), net.blobs["label"].data.copy()


def test_batches_in_list_order_with_wrap_around(folder):
    net = Net(net_text("list.txt", batch=2, root="img/"), phase="TEST")
    assert net.blobs["data"].shape == (2, 3, 6, 8) and net.blobs["label"].shape == (2,)
    names = ["a.png", "b c.png", "d.jpg", "e.bmp", "f.png"]
    for k in range(4):                                        # 8 images: the list of 5 wraps once
        data, label = forward(net)
        rows = [(2 * k + i) % 5 for i in range(2)]
        assert label.dtype == numpy.float32 and label.tolist() == [10 + r for r in rows]
        for i, r in enumerate(rows):
            assert numpy.array_equal(data[i], caffe_image(folder / "img" / names[r]))


def test_resize_grey_and_transform(folder):
    transform = 'transform_param { scale: 0.5 mean_value: 100 crop_size: 3 }'
    net = Net(net_text("list.txt", batch=1, root="img/", transform=transform, new_height=5, new_width=7,
                       is_color=False), phase="TEST")
    assert net.blobs["data"].shape == (1, 1, 3, 3)
    data, _ = forward(net)
    image = caffe_image(folder / "img" / "a.png", color=False, size=(7, 5))
    assert numpy.array_equal(data[0], (image[:, 1:4, 2:5] - 100) * numpy.float32(0.5))    # centre: (5-3)//2, (7-3)//2


def test_shuffle_is_caffes_and_repeats_with_the_seed(folder):
    seed(3)
    net = Net(net_text("list.txt", batch=5, root="img/", shuffle=True), phase="TRAIN")
    first, second = forward(net)[1].tolist(), forward(net)[1].tolist()
    expected = list(range(10, 15))
    rng = CaffeRNG(int(numpy.random.default_rng(3).integers(2 ** 32)))     # the layer's seed: one shared draw
    rng.shuffle(expected)
    assert first == expected
    rng.shuffle(expected)                                     # reshuffled at the wrap
    assert second == expected and sorted(second) == list(range(10, 15))
    seed(3)
    again = Net(net_text("list.txt", batch=5, root="img/", shuffle=True), phase="TRAIN")
    assert forward(again)[1].tolist() == first


def test_rand_skip_starts_at_a_drawn_line(folder):
    seed(8)
    net = Net(net_text("list.txt", batch=1, root="img/", rand_skip=4), phase="TRAIN")
    skip = int(numpy.random.default_rng(8).integers(2 ** 32)) % 4
    assert forward(net)[1].tolist() == [10 + skip]


@pytest.mark.parametrize("skip", [0, 1, 3, 6])
def test_fast_forward_equals_that_many_forwards(folder, skip):
    text = net_text("list.txt", batch=2, root="img/", shuffle=True,
                    transform="transform_param { mirror: true crop_size: 4 }")
    seed(11)
    read = Net(text, phase="TRAIN")
    expected = [forward(read) for _ in range(skip + 3)][skip:]
    seed(11)
    skipped = Net(text, phase="TRAIN")
    skipped.layers[0].fast_forward(skip)
    for (data, label), (want_data, want_label) in zip([forward(skipped) for _ in range(3)], expected):
        assert numpy.array_equal(data, want_data) and numpy.array_equal(label, want_label)


def test_relative_paths_resolve_against_base_dir(folder, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    net = Net(net_text("list.txt", batch=1, root="img/"), phase="TEST", base_dir=str(folder))
    assert forward(net)[1].tolist() == [10]


def test_root_folder_is_prepended_as_is(folder):
    (folder / "list2.txt").write_text("g/a.png 7\n")
    net = Net(net_text("list2.txt", batch=1, root="im"), phase="TEST")      # "im" + "g/a.png", as Caffe
    assert forward(net)[1].tolist() == [7]


@pytest.mark.parametrize("listing, message", [
    (None, r"ImageData layer 'images': image list 'missing.txt' not found"),
    ("a.png 1\nb.png one\n", r"line 2 of list2.txt: expected '<image path> <integer label>', got 'b.png one'"),
    ("\n\n", r"image list list2.txt is empty"),
    ("a.png 1\nnope.png 2\n", r"image 'img/nope.png' not found .*; it is on line 2 of list2.txt"),
    ("a.png 1\nbroken.png 2\n", r"could not load image img/broken.png \(line 2 of list2.txt\): cannot decode"),
    ("a.png 1\nsmall.png 2\n", r"image small.png \(line 2 of list2.txt\) is 3 x 4 x 4, but this batch's first "
                               r"image makes it 3 x 6 x 8"),
])
def test_errors_name_the_list_line_and_image(folder, listing, message):
    (folder / "img" / "broken.png").write_bytes(b"not a png")
    Image.fromarray(numpy.zeros((4, 4, 3), numpy.uint8)).save(folder / "img" / "small.png")
    if listing is not None:
        (folder / "list2.txt").write_text(listing)
    with pytest.raises(ValueError, match=message):
        Net(net_text("missing.txt" if listing is None else "list2.txt", batch=2, root="img/"),
            phase="TEST").forward()


def test_new_height_needs_new_width(folder):
    with pytest.raises(ValueError, match="new_height and new_width must be set together"):
        Net(net_text("list.txt", root="img/", new_height=4), phase="TEST")


def test_a_restored_solver_reads_what_an_uninterrupted_one_reads(folder):
    """The solver fast-forwards ImageData on restore: shuffles, mirrors and crops replayed, no image read."""
    from solver import get_solver
    layer = net_text("list.txt", batch=2, root="img/", shuffle=True,
                     transform="transform_param { mirror: true crop_size: 4 }")
    (folder / "train.prototxt").write_text(
        layer + ' layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param '
                '{ num_output: 20 weight_filler { type: "xavier" } } } layer { name: "loss" type: "SoftmaxWithLoss" '
                'bottom: "ip" bottom: "label" top: "loss" }')
    (folder / "solver.prototxt").write_text('net: "train.prototxt" base_lr: 0.01 lr_policy: "fixed" max_iter: 10 '
                                            'snapshot_prefix: "snap/s" random_seed: 5 display: 0')
    straight = get_solver(str(folder / "solver.prototxt"))
    straight.step(3)
    _, state = straight.snapshot()
    straight.step(2)
    resumed = get_solver(str(folder / "solver.prototxt"))
    resumed.restore(state)
    resumed.step(2)
    for name in ("data", "label"):
        assert numpy.array_equal(resumed.net.blobs[name].data, straight.net.blobs[name].data)
