"""The synthetic dataset: deterministic, exact labels with VOC's ignore band, VOC's folder layout."""
import numpy
import pytest
from PIL import Image

from demo import synthetic


def naive_band(raw, r):
    """Oracle: a pixel is ignored when any pixel within Chebyshev distance r (inside the image) differs."""
    h, w = raw.shape
    out = raw.copy()
    for y in range(h):
        for x in range(w):
            window = raw[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
            if (window != raw[y, x]).any():
                out[y, x] = 255
    return out


def test_images_are_deterministic_per_seed_split_and_index():
    a_img, a_lab, a_raw = synthetic.make_image(3, "train", 7, size=64)
    b_img, b_lab, b_raw = synthetic.make_image(3, "train", 7, size=64)
    assert a_img.dtype == numpy.uint8 and a_img.shape == (64, 64, 3) and a_lab.shape == (64, 64)
    assert (a_img == b_img).all() and (a_lab == b_lab).all() and (a_raw == b_raw).all()
    for other in (synthetic.make_image(3, "train", 8, size=64), synthetic.make_image(4, "train", 7, size=64),
                  synthetic.make_image(3, "val", 7, size=64)):
        assert (other[0] != a_img).mean() > 0.5


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("width", [2, 4])
def test_ignore_band_straddles_every_boundary_exactly(index, width):
    _, _, raw = synthetic.make_image(0, "train", index, size=48)
    banded = synthetic.ignore_band(raw, width)
    assert (banded == naive_band(raw, width // 2)).all()
    assert (banded[banded != 255] == raw[banded != 255]).all()


def test_labels_cover_all_classes_with_background_the_majority():
    labels = numpy.stack([synthetic.make_image(0, "train", i, size=96)[1] for i in range(60)])
    assert set(numpy.unique(labels)) <= set(range(synthetic.NUM_CLASSES)) | {255}
    counts = numpy.bincount(labels.ravel(), minlength=256)
    assert (counts[:synthetic.NUM_CLASSES] > 0).all()
    assert counts[0] > 0.5 * labels.size
    band = counts[255] / labels.size
    assert 0.02 < band < 0.15


def test_objects_are_painted_where_their_label_is():
    # a disk of radius 10.3 (no pixel centre on its outline) over a background; later objects occlude
    img, label = synthetic.render_scene(numpy.random.default_rng(5), 48, [(1, 24.0, 24.0, 10.3),
                                                                          (2, 24.0, 36.0, 6.0)])
    yy, xx = numpy.mgrid[0:48, 0:48]
    disk = numpy.hypot(yy - 24, xx - 24) <= 10.3
    assert (label[disk & (label != 2)] == 1).all() and (label[~disk & (label != 2)] == 0).all()
    assert (label == 2).sum() > 50 and (disk & (label == 2)).any()
    bg, bg_label = synthetic.render_scene(numpy.random.default_rng(5), 48, [])
    assert (bg_label == 0).all() and bg.shape == img.shape


def test_crops_are_deterministic_and_cover_the_six_classes():
    a, la = synthetic.make_crops(0, "crops", 30, size=40)
    b, lb = synthetic.make_crops(0, "crops", 30, size=40)
    assert a.shape == (30, 40, 40, 3) and (a == b).all() and (la == lb).all()
    assert set(la.tolist()) == set(range(synthetic.NUM_CLASSES - 1))


def test_worker_processes_make_the_same_data_as_one_process(tmp_path):
    """Large sets are made by worker processes; each item depends on its own arguments only, so the data are the
    same (order included) however they are shared out."""
    jobs = [(0, "crops", i, 40, 64) for i in range(12)]
    pooled = list(synthetic._parallel(synthetic.make_crop, jobs, min_jobs=1))
    for (image, label), job in zip(pooled, jobs):
        want_image, want_label = synthetic.make_crop(*job)
        numpy.testing.assert_array_equal(image, want_image)
        assert label == want_label


def test_voc_layout_round_trips(tmp_path):
    root = tmp_path / "voc"
    ids = synthetic.write_voc(str(root), seed=1, n_train=3, n_val=2, size=32)
    assert ids == {"train": ["train_00000", "train_00001", "train_00002"], "val": ["val_00000", "val_00001"]}
    for split in ("train", "val"):
        listed = (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
        assert listed == ids[split]
    image, label, _ = synthetic.make_image(1, "val", 1, size=32)
    jpg = Image.open(root / "JPEGImages" / "val_00001.jpg")
    assert jpg.mode == "RGB" and jpg.size == (32, 32)
    assert numpy.abs(numpy.asarray(jpg, numpy.float64) - image).mean() < 4     # JPEG at quality 95
    png = Image.open(root / "SegmentationClass" / "val_00001.png")
    assert png.mode == "P"
    assert (numpy.array(png) == label).all()
    palette = png.getpalette()                                                   # VOC's palette
    assert palette[:6] == [0, 0, 0, 128, 0, 0] and palette[3 * 255:] == [224, 224, 192]
    # writing again with the same settings keeps the files; other settings are refused
    synthetic.write_voc(str(root), seed=1, n_train=3, n_val=2, size=32)
    with pytest.raises(ValueError, match="other settings"):
        synthetic.write_voc(str(root), seed=2, n_train=3, n_val=2, size=32)


@pytest.mark.parametrize("layer_type", ["VOCSegData", "SegFolderData"])
def test_the_data_layers_read_it_unchanged(tmp_path, layer_type):
    from layers import Net
    root = tmp_path / "voc"
    synthetic.write_voc(str(root), seed=2, n_train=2, n_val=2, size=32)
    if layer_type == "VOCSegData":
        params = f"{{'voc_dir': '{root}', 'split': 'val', 'mean': (0, 0, 0)}}"
    else:
        params = (f"{{'image_dir': '{root}/JPEGImages', 'label_dir': '{root}/SegmentationClass', "
                  f"'split': '{root}/ImageSets/Segmentation/val.txt', 'num_classes': 7, 'mean': (0, 0, 0), "
                  f"'batch_size': 2, 'crop': 32}}")
    net = Net(f'layer {{ name: "data" type: "{layer_type}" top: "data" top: "label" '
              f'python_param {{ param_str: "{params}" }} }}')
    net.forward()
    for i in range(net.blobs["data"].shape[0]):
        image, label, _ = synthetic.make_image(2, "val", i, size=32)
        assert (net.blobs["label"].data[i, 0] == label).all()
        bgr = image[..., ::-1].transpose(2, 0, 1).astype(numpy.float64)
        assert numpy.abs(net.blobs["data"].data[i] - bgr).mean() < 4           # JPEG at quality 95
