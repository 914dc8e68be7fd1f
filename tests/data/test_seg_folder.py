"""The generic SegFolderData layer: a user's folders, batches of one size, and label checks at setup that name
the file and the values found."""
import shutil
import warnings

import numpy
import pytest
from PIL import Image

from solver.palette import colorize
from tests.conftest import FIXTURES
from tests.data.test_voc_layers import data_layer, expected_data, run

VOC = FIXTURES / "voc"
MEAN = (104.00699, 116.66877, 122.67892)


def make_dataset(root, labels, sizes=None, split="train"):
    """images/{id}.png random RGB, labels/{id}.png grayscale from `labels` {id: array}, and split.txt."""
    rng = numpy.random.default_rng(6)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    for sample_id, label in labels.items():
        h, w = (sizes or {}).get(sample_id, label.shape[:2])
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=numpy.uint8)).save(root / "images" / f"{sample_id}.png")
        Image.fromarray(label).save(root / "labels" / f"{sample_id}.png")
    (root / f"{split}.txt").write_text("\n".join(labels) + "\n")
    return root


def folder_layer(root, extra="", split="train", phase="TRAIN"):
    return data_layer("SegFolderData", f"{{'image_dir': '{root / 'images'}', 'label_dir': '{root / 'labels'}', "
                                       f"'split': '{root / (split + '.txt')}', 'num_classes': 3{extra}}}",
                      phase=phase)


def test_voc_fixture_as_a_folder_dataset(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    shutil.copy(VOC / "JPEGImages" / "2007_000129.jpg", tmp_path / "images")
    shutil.copy(VOC / "SegmentationClass" / "2007_000129.png", tmp_path / "labels")
    (tmp_path / "val.txt").write_text("2007_000129\n")
    layer = data_layer("SegFolderData", f"{{'image_dir': '{tmp_path / 'images'}', 'label_dir': "
                                        f"'{tmp_path / 'labels'}', 'split': '{tmp_path / 'val.txt'}', "
                                        f"'num_classes': 21, 'mean': {MEAN}}}", phase="TEST")
    data, label = run(layer)
    layer.run_forward([], [data, label])
    numpy.testing.assert_allclose(data.data[0], expected_data(VOC / "JPEGImages" / "2007_000129.jpg", MEAN),
                                  atol=1e-4)
    numpy.testing.assert_array_equal(label.data[0, 0],
                                     numpy.array(Image.open(VOC / "SegmentationClass" / "2007_000129.png")))


def test_batches_with_resize_crop_and_mirror(tmp_path):
    labels = {f"a{k}": numpy.full((10 + k, 12 + 2 * k), k % 3, dtype=numpy.uint8) for k in range(4)}
    root = make_dataset(tmp_path, labels)
    layer = folder_layer(root, ", 'resize': (9, 11), 'crop': 8, 'mirror': True, 'batch_size': 3, 'seed': 3")
    data, label = run(layer)
    for _ in range(2):
        layer.run_forward([], [data, label])
        assert data.shape == (3, 3, 8, 8) and label.shape == (3, 1, 8, 8)
        for n in range(3):          # nearest resizing of a constant label keeps it constant
            assert len(numpy.unique(label.data[n])) == 1


def test_crop_pads_small_images_with_ignore_label(tmp_path):
    root = make_dataset(tmp_path, {"a": numpy.ones((4, 5), dtype=numpy.uint8)})
    layer = folder_layer(root, ", 'crop': (6, 7), 'ignore_label': 255", phase="TEST")
    data, label = run(layer)
    layer.run_forward([], [data, label])
    assert label.shape == (1, 1, 6, 7)
    numpy.testing.assert_array_equal(label.data[0, 0, :4, :5], 1)
    assert (label.data[0, 0, 4:] == 255).all() and (label.data[0, 0, :, 5:] == 255).all()
    assert (data.data[0, :, 4:] == 0).all()        # padded with the mean: zero after subtraction


def test_out_of_range_label_names_file_and_value(tmp_path):
    bad = numpy.zeros((6, 6), dtype=numpy.uint8)
    bad[2, 3] = 7
    root = make_dataset(tmp_path, {"good": numpy.zeros((6, 6), dtype=numpy.uint8), "bad": bad})
    with pytest.raises(ValueError) as e:
        run(folder_layer(root))
    text = str(e.value)
    assert "SegFolderData layer 'data'" in text and "1 of 2 sample(s)" in text
    assert f"{root / 'labels' / 'bad.png'} holds value(s) 7 outside [0, 3)" in text and "raise num_classes" in text


def test_zero_255_mask_with_other_ignore_label_gets_a_mask_hint(tmp_path):
    mask = numpy.zeros((6, 6), dtype=numpy.uint8)
    mask[1:4, 1:4] = 255
    root = make_dataset(tmp_path, {"m": mask})
    layer = data_layer("SegFolderData", f"{{'image_dir': '{root / 'images'}', 'label_dir': '{root / 'labels'}', "
                                        f"'split': '{root / 'train.txt'}', 'num_classes': 2, 'ignore_label': 254}}")
    with pytest.raises(ValueError, match="holds value.s. 255 outside .0, 2.*0/255 mask: write 1 for the foreground"):
        run(layer)


def test_zero_255_masks_with_ignore_255_warn(tmp_path):
    mask = numpy.zeros((6, 6), dtype=numpy.uint8)
    mask[1:4, 1:4] = 255
    root = make_dataset(tmp_path, {"m": mask})
    with pytest.warns(UserWarning, match="holds only 0 and the ignore_label 255"):
        run(folder_layer(root))


def test_colour_labels_are_refused_with_a_hint(tmp_path):
    label = numpy.array([[0, 1, 2], [2, 1, 0]], dtype=numpy.uint8)
    root = make_dataset(tmp_path, {"c": colorize(label)})            # an RGB label in VOC colours
    with pytest.raises(ValueError, match="is an RGB colour image .3 colours.*not colours.*decode_color"):
        run(folder_layer(root))


def test_grayscale_of_colour_labels_gets_a_hint(tmp_path):
    label = numpy.array([[0, 38, 75], [113, 14, 52]], dtype=numpy.uint8)     # VOC colours saved as 'L'
    root = make_dataset(tmp_path, {"g": label})
    with pytest.raises(ValueError, match="38, 52, 75, 113 outside .0, 3.*colour label converted to grayscale"):
        run(folder_layer(root))


def test_size_mismatch_and_missing_files(tmp_path):
    root = make_dataset(tmp_path, {"s": numpy.zeros((6, 6), dtype=numpy.uint8)}, sizes={"s": (6, 7)})
    with pytest.raises(ValueError, match=r"labels/s.png is 6x6 but image .*images/s.png is 7x6"):
        run(folder_layer(root))
    (root / "train.txt").write_text("s\nghost\n")
    with pytest.raises(ValueError, match="no image for id 'ghost'"):
        run(folder_layer(root))


def test_batch_needs_one_size(tmp_path):
    root = make_dataset(tmp_path, {"a": numpy.zeros((6, 6), dtype=numpy.uint8)})
    with pytest.raises(ValueError, match="batch_size 2 needs every sample to have one size: set resize or crop"):
        run(folder_layer(root, ", 'batch_size': 2"))


def test_valid_dataset_passes_quietly(tmp_path):
    labels = {f"v{k}": numpy.random.default_rng(k).choice([0, 1, 2, 255], (5, 7)).astype(numpy.uint8)
              for k in range(3)}
    root = make_dataset(tmp_path, labels, split="val")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = folder_layer(root, split="val", phase="TEST")
        data, label = run(layer)
    for k in range(4):              # TEST phase: the split in order
        layer.run_forward([], [data, label])
        numpy.testing.assert_array_equal(label.data[0, 0], labels[f"v{k % 3}"])


@pytest.mark.parametrize("extra", [", 'crop': 7, 'mirror': True, 'batch_size': 3, 'seed': 5",     # draws per sample
                                   ", 'resize': (8, 9), 'batch_size': 2, 'seed': 5",                # order only
                                   ", 'crop': 7, 'batch_size': 2, 'randomize': False"])             # in order
@pytest.mark.parametrize("skip", [0, 1, 4])
def test_fast_forward_reads_on_as_the_skipped_forwards_would(tmp_path, extra, skip):
    """A restored solver fast-forwards its data layers: after it, the next batches are the uninterrupted run's."""
    labels = {f"a{k}": numpy.full((9 + k, 10 + k), k % 3, dtype=numpy.uint8) for k in range(5)}
    root = make_dataset(tmp_path, labels, sizes={f"a{k}": (9 + k, 10 + k) for k in range(5)})
    straight, resumed = folder_layer(root, extra), folder_layer(root, extra)
    tops_straight, tops_resumed = run(straight), run(resumed)
    for _ in range(skip):
        straight.run_forward([], tops_straight)
    resumed.fast_forward(skip)
    for _ in range(3):
        for layer, tops in ((straight, tops_straight), (resumed, tops_resumed)):
            layer.reshape([], tops)
            layer.run_forward([], tops)
        for a, b in zip(tops_straight, tops_resumed):
            numpy.testing.assert_array_equal(a.data, b.data)
