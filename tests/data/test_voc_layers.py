"""VOC and SBD data layers on the real VOC fixture: tops, BGR and mean, labels, the reference's sampling
order, the reference prototxt's param_str, and param_str errors."""
import random
import shutil

import numpy
import pytest
import scipy.io
from PIL import Image

from layers import Blob, Net
from netspec import io
from tests.conftest import FIXTURES, REFERENCE
from tests.gradient_check import make_layer

VOC = FIXTURES / "voc"
MEAN = (104.00699, 116.66877, 122.67892)
ID = "2007_000129"


def expected_data(jpg, mean):
    """Caffe's input, computed here from the file: float32, RGB -> BGR, minus the mean, C x H x W."""
    rgb = numpy.array(Image.open(jpg), dtype=numpy.float64)
    return (rgb[:, :, ::-1] - numpy.array(mean)).transpose(2, 0, 1)


def make_voc(root, split_ids, split="seg11valid", extra=()):
    """A VOC tree holding the fixture image (plus `extra` (id, rgb, label) samples) and one split file."""
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(VOC / "JPEGImages" / f"{ID}.jpg", root / "JPEGImages")
    shutil.copy(VOC / "SegmentationClass" / f"{ID}.png", root / "SegmentationClass")
    for sample_id, rgb, label in extra:
        Image.fromarray(rgb).save(root / "JPEGImages" / f"{sample_id}.jpg", quality=100)
        Image.fromarray(label, mode="L").save(root / "SegmentationClass" / f"{sample_id}.png")
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(split_ids) + "\n")
    return root


def data_layer(type_, params, tops=("data", "label"), phase="TRAIN"):
    top = " ".join(f'top: "{t}"' for t in tops)
    return make_layer(f'name: "data" type: "{type_}" {top} python_param {{ param_str: "{params}" }}', phase)


def run(layer, ntop=2):
    tops = [Blob() for _ in range(ntop)]
    layer.run_setup([], tops)
    return tops


def test_voc_tops_are_bgr_minus_mean_and_palette_indices(tmp_path):
    root = make_voc(tmp_path / "VOC2011", [ID])
    layer = data_layer("VOCSegData", f"{{'voc_dir': '{root}', 'split': 'seg11valid', 'mean': {MEAN}}}")
    data, label = run(layer)
    layer.run_forward([], [data, label])
    assert data.shape == (1, 3, 500, 334) and label.shape == (1, 1, 500, 334)
    numpy.testing.assert_allclose(data.data[0], expected_data(VOC / "JPEGImages" / f"{ID}.jpg", MEAN), atol=1e-4)
    png = numpy.array(Image.open(VOC / "SegmentationClass" / f"{ID}.png"))
    numpy.testing.assert_array_equal(label.data[0, 0], png)
    assert set(numpy.unique(label.data).tolist()) == {0, 2, 15, 255}


def test_reference_val_prototxt_param_str(tmp_path, monkeypatch):
    """The data layer of the reference voc-fcn8s val.prototxt, its param_str untouched (relative voc_dir
    '../data/pascal/VOC2011', seed 1337, split seg11valid), as a native layer and as a Python layer."""
    make_voc(tmp_path / "data" / "pascal" / "VOC2011", [ID])
    (tmp_path / "voc-fcn8s").mkdir()
    monkeypatch.chdir(tmp_path / "voc-fcn8s")
    val = io.read_net(str(REFERENCE / "voc-fcn8s" / "val.prototxt"))
    param = val.layer[0]
    assert param.type == "Python" and param.python_param.layer == "VOCSegDataLayer"
    import layers
    kinds = ["VOCSegData"] + (["Python"] if "Python" in layers.known_types() else [])
    for kind in kinds:
        net_param = type(val)(name="val_data")
        lp = net_param.layer.add()
        lp.CopyFrom(param)
        lp.type = kind
        net = Net(net_param, phase="TEST")
        out = net.forward()
        assert out["data"].shape == (1, 3, 500, 334)
        assert set(numpy.unique(out["label"]).tolist()) == {0, 2, 15, 255}


def test_python_layer_contract_like_pycaffe(tmp_path):
    """Built as pycaffe builds a Python layer: cls(layer_param), then param_str, setup, reshape, forward."""
    from layers.data.voc_layers import VOCSegDataLayer
    root = make_voc(tmp_path / "VOC", [ID], split="val")
    param = io.read_net('layer { name: "data" type: "Python" top: "data" top: "label" '
                        'python_param { module: "voc_layers" layer: "VOCSegDataLayer" } }').layer[0]
    layer = VOCSegDataLayer(param)
    layer.param_str = f"{{'voc_dir': '{root}', 'split': 'val', 'mean': {MEAN}}}"
    tops = [Blob(), Blob()]
    layer.setup([], tops)
    layer.reshape([], tops)
    layer.forward([], tops)
    layer.backward(tops, [], [])
    assert tops[1].shape == (1, 1, 500, 334) and tops[0].data.dtype == numpy.float32


def tiny_samples(n, rng):
    out = []
    for k in range(n):
        h, w = 4 + k, 6 + k                        # each sample has its own size, so shapes identify it
        out.append((f"s{k}", rng.integers(0, 256, (h, w, 3), dtype=numpy.uint8),
                    numpy.full((h, w), k, dtype=numpy.uint8)))
    return out


@pytest.mark.parametrize("seed", [1337, 7])
def test_train_order_is_seeded_randint_with_replacement(tmp_path, seed):
    samples = tiny_samples(5, numpy.random.default_rng(0))
    ids = [s[0] for s in samples]
    root = make_voc(tmp_path / "VOC", ids, split="train", extra=samples)
    layer = data_layer("VOCSegData", f"{{'voc_dir': '{root}', 'split': 'train', 'mean': {MEAN}, 'seed': {seed}}}")
    data, label = run(layer)
    seen = []
    for _ in range(12):
        layer.run_forward([], [data, label])
        seen.append(int(label.data[0, 0, 0, 0]))
    r = random.Random(seed)                        # the reference: random.seed(seed), randint at setup and per forward
    assert seen == [r.randint(0, len(ids) - 1) for _ in range(12)]


def test_fast_forward_skips_as_forwards_would(tmp_path):
    samples = tiny_samples(5, numpy.random.default_rng(0))
    root = make_voc(tmp_path / "VOC", [s[0] for s in samples], split="train", extra=samples)
    params = f"{{'voc_dir': '{root}', 'split': 'train', 'mean': {MEAN}, 'seed': 3}}"
    straight, resumed = data_layer("VOCSegData", params), data_layer("VOCSegData", params)
    tops_straight, tops_resumed = run(straight), run(resumed)
    for _ in range(7):
        straight.run_forward([], tops_straight)
    resumed.fast_forward(7)
    for layer, tops in ((straight, tops_straight), (resumed, tops_resumed)):
        layer.reshape([], tops)
        layer.run_forward([], tops)
    assert resumed.current_id == straight.current_id
    for a, b in zip(tops_straight, tops_resumed):
        numpy.testing.assert_array_equal(a.data, b.data)


def test_non_train_split_or_randomize_false_walks_the_split_in_order(tmp_path):
    samples = tiny_samples(3, numpy.random.default_rng(1))
    ids = [s[0] for s in samples]
    for split, extra in (("val", ""), ("train", ", 'randomize': False")):
        root = make_voc(tmp_path / split, ids, split=split, extra=samples)
        layer = data_layer("VOCSegData", f"{{'voc_dir': '{root}', 'split': '{split}', 'mean': {MEAN}, "
                                         f"'seed': 1{extra}}}")
        data, label = run(layer)
        seen = []
        for _ in range(7):
            layer.run_forward([], [data, label])
            seen.append((int(label.data[0, 0, 0, 0]), data.shape[2:]))
        assert [s[0] for s in seen] == [0, 1, 2, 0, 1, 2, 0]
        assert [s[1] for s in seen][:3] == [(4, 6), (5, 7), (6, 8)]      # native size, batch 1


def test_sbdd_reads_gtcls_segmentation(tmp_path):
    root = tmp_path / "dataset"
    (root / "img").mkdir(parents=True)
    (root / "cls").mkdir()
    shutil.copy(VOC / "JPEGImages" / f"{ID}.jpg", root / "img")
    seg = numpy.random.default_rng(2).integers(0, 21, (500, 334)).astype(numpy.uint8)
    # SBD's layout: a GTcls struct with Segmentation, Boundaries and CategoriesPresent
    scipy.io.savemat(root / "cls" / f"{ID}.mat", {"GTcls": {"Segmentation": seg, "Boundaries": numpy.zeros((1, 20)),
                                                            "CategoriesPresent": numpy.unique(seg)[1:]}})
    (root / "train.txt").write_text(f"{ID}\n")
    layer = data_layer("SBDDSegData", f"{{'sbdd_dir': '{root}', 'split': 'train', 'mean': {MEAN}, 'seed': 1337}}")
    data, label = run(layer)
    layer.run_forward([], [data, label])
    numpy.testing.assert_array_equal(label.data[0, 0], seg)
    numpy.testing.assert_allclose(data.data[0], expected_data(root / "img" / f"{ID}.jpg", MEAN), atol=1e-4)


@pytest.mark.parametrize("params, message", [
    ("dict(voc_dir='x', split='val', mean=(1, 2, 3))", "dict literal"),
    ("{'voc_dir': __import__('os').getcwd()}", "dict literal"),
    ("{'voc_dir': 'x', 'mean': (1, 2, 3)}", "lacks 'split'"),
    ("{'voc_dir': 'x', 'split': 'val', 'mean': (1, 2, 3), 'randomise': False}", "unknown key(s) 'randomise'"),
    ("{'voc_dir': '/nonexistent/VOC', 'split': 'val', 'mean': (1, 2, 3)}",
     "/nonexistent/VOC/ImageSets/Segmentation/val.txt not found"),
])
def test_param_str_errors_name_the_layer_and_the_fix(params, message):
    layer = data_layer("VOCSegData", params.replace('"', '\\"'))
    with pytest.raises(ValueError) as e:
        run(layer)
    assert "VOCSegData layer 'data'" in str(e.value) and message in str(e.value)


def test_wrong_number_of_tops(tmp_path):
    root = make_voc(tmp_path / "VOC", [ID])
    layer = data_layer("VOCSegData", f"{{'voc_dir': '{root}', 'split': 'val', 'mean': {MEAN}}}", tops=("data",))
    with pytest.raises(ValueError, match="needs 2 top blob"):
        run(layer, 1)


def test_netspec_native_type(tmp_path):
    from netspec.spec import NetSpec, layers as L
    root = make_voc(tmp_path / "VOC", [ID], split="val")
    n = NetSpec()
    n.data, n.label = L.VOCSegData(ntop=2, python_param=dict(
        param_str=str(dict(voc_dir=str(root), split="val", mean=MEAN))))
    out = Net(n.to_proto(), phase="TEST").forward()
    assert out["data"].shape == (1, 3, 500, 334) and out["label"].shape == (1, 1, 500, 334)
