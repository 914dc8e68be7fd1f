"""Scores: the confusion histogram and the paper's four metrics against hand-computed matrices and the
reference FCN-8s output on the real VOC image; seg_tests on a val net, from a solver callback, and the CLI."""
import math

import numpy
import pytest
from PIL import Image

from layers import Net
from solver import SGDSolver
from solver.palette import read_color_label
from solver.score import compute_scores, fast_hist, main, seg_test_callback, seg_tests
from tests.conftest import FIXTURES
from tests.data.test_voc_layers import MEAN, make_voc

VOC = FIXTURES / "voc"
ID = "2007_000129"


def test_fast_hist_counts_label_rows_prediction_columns_and_skips_void():
    label = numpy.array([[0, 0, 1], [2, 255, 1]])
    pred = numpy.array([[0, 1, 1], [0, 2, 2]])
    hist = fast_hist(label, pred, 3)
    numpy.testing.assert_array_equal(hist, [[1, 1, 0],      # label 0: once right, once taken for 1
                                            [0, 1, 1],      # label 1: right, then taken for 2
                                            [1, 0, 0]])     # label 2: taken for 0; the 255 pixel is not counted
    with pytest.raises(ValueError, match="predictions span 0..3, outside \\[0, 3\\)"):
        fast_hist(label, pred + (pred == 2), 3)


def test_four_metrics_from_a_hand_computed_histogram():
    # rows label, columns prediction; class 3 is absent from both, class 2 is predicted but never labelled
    hist = numpy.array([[8, 2, 0, 0],
                        [1, 3, 2, 0],
                        [0, 0, 0, 0],
                        [0, 0, 0, 0]])
    s = compute_scores(hist)
    assert s["pixel_accuracy"] == pytest.approx(11 / 16)
    assert s["mean_accuracy"] == pytest.approx((8 / 10 + 3 / 6) / 2)          # class 2, 3: no label pixels, NaN
    iu = [8 / (10 + 9 - 8), 3 / (6 + 5 - 3), 0 / (0 + 2 - 0)]
    numpy.testing.assert_allclose(s["per_class_iu"][:3], iu)
    assert math.isnan(s["per_class_iu"][3])                                  # absent from label and prediction
    assert s["mean_iu"] == pytest.approx(sum(iu) / 3)                        # the predicted-only class counts as 0
    assert s["fwavacc"] == pytest.approx(10 / 16 * iu[0] + 6 / 16 * iu[1])


def test_perfect_and_empty_histograms():
    s = compute_scores(numpy.diag([5, 0, 7]))
    assert s["pixel_accuracy"] == s["mean_accuracy"] == s["mean_iu"] == s["fwavacc"] == 1.0
    empty = compute_scores(numpy.zeros((3, 3)))
    assert all(math.isnan(empty[k]) for k in ("pixel_accuracy", "mean_accuracy", "mean_iu", "fwavacc"))


def test_reference_fcn8s_output_scores_as_published():
    """The reference FCN-8s prediction (a VOC-coloured PNG) decoded and scored against the VOC label."""
    prediction = read_color_label(VOC / "reference_outputs" / f"voc-fcn8s_{ID}_color.png")
    label = numpy.array(Image.open(VOC / "SegmentationClass" / f"{ID}.png"))
    assert set(numpy.unique(prediction).tolist()) == {0, 2, 15}
    s = compute_scores(fast_hist(label, prediction, 21))
    assert round(s["pixel_accuracy"], 4) == 0.8425
    assert round(s["mean_accuracy"], 4) == 0.8455
    assert round(s["mean_iu"], 4) == 0.7196
    assert round(s["fwavacc"], 4) == 0.7274
    assert numpy.isfinite(s["per_class_iu"]).sum() == 3          # the classes present: 0, 2, 15


VAL = """name: "val"
layer {{ name: "data" type: "VOCSegData" top: "data" top: "label"
  python_param {{ param_str: "{{'voc_dir': '{voc}', 'split': '{split}', 'mean': {mean}, 'seed': 1337}}" }} }}
layer {{ name: "score" type: "Convolution" bottom: "data" top: "score"
  convolution_param {{ num_output: 21 kernel_size: 1 }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_param {{ ignore_label: 255 normalize: false }} }}
"""


def val_net(tmp_path, split="seg11valid"):
    root = make_voc(tmp_path / "VOC2011", [ID], split=split)
    path = tmp_path / f"{split}.prototxt"
    path.write_text(VAL.format(voc=root, split=split, mean=MEAN))
    return path


def label_counts():
    label = numpy.array(Image.open(VOC / "SegmentationClass" / f"{ID}.png"))
    return {c: int((label == c).sum()) for c in (0, 2, 15)}


def test_seg_tests_on_a_val_net_writes_palette_pngs(tmp_path, capsys):
    # zero weights: every score is 0, the argmax is class 0 everywhere, and the loss is ln 21 per valid pixel
    net = Net(str(val_net(tmp_path)), phase="TEST")
    s = seg_tests(net, str(tmp_path / "segs_{}"), [ID, ID])
    t = label_counts()
    total = sum(t.values())
    assert s["hist"][:, 0].sum() == 2 * total and s["hist"].sum() == 2 * total
    assert s["pixel_accuracy"] == pytest.approx(t[0] / total)
    assert s["mean_iu"] == pytest.approx(t[0] / total / 3)
    assert s["loss"] == pytest.approx(total * math.log(21), rel=1e-5)
    saved = Image.open(tmp_path / "segs_0" / f"{ID}.png")
    assert saved.mode == "P" and saved.size == (334, 500) and not numpy.array(saved).any()
    assert ">>> " in capsys.readouterr().out


def test_seg_test_callback_scores_the_test_net_with_the_train_weights(tmp_path):
    train = val_net(tmp_path, split="train")
    val = val_net(tmp_path, split="seg11valid")
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(f'train_net: "{train}"\ntest_net: "{val}"\ntest_iter: 1\ntest_interval: 999999999\n'
                           f'base_lr: 0\nlr_policy: "fixed"\nmomentum: 0.99\ndisplay: 0\n')
    solver = SGDSolver(str(solver_path))
    solver.net.params["score"][1].data[2] = 1.0        # the train net predicts bicycle (2); the test net, not shared, 0
    callback = solver.add_callback(seg_test_callback(2, False, [ID], log=lambda line: None))
    solver.step(4)
    assert [s["iteration"] for s in callback.history] == [2, 4]
    t = label_counts()
    assert callback.history[-1]["pixel_accuracy"] == pytest.approx(t[2] / sum(t.values()))


def test_score_cli_on_val_and_deploy_nets(tmp_path, capsys):
    path = val_net(tmp_path)
    net = Net(str(path), phase="TEST")
    net.params["score"][1].data[15] = 1.0             # predicts person everywhere
    weights = tmp_path / "w.caffemodel"
    net.save(str(weights))
    t = label_counts()
    s = main([str(path), str(weights), "--save", str(tmp_path / "out")])      # the ids come from the data layer
    assert s["pixel_accuracy"] == pytest.approx(t[15] / sum(t.values()))
    assert (numpy.array(Image.open(tmp_path / "out" / f"{ID}.png")) == 15).all()
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text('layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 2 '
                      'dim: 2 } } }\nlayer { name: "score" type: "Convolution" bottom: "data" top: "score" '
                      'convolution_param { num_output: 21 kernel_size: 1 } }\n')
    (tmp_path / "ids.txt").write_text(ID + "\n")
    s = main([str(deploy), str(weights), "--images", str(VOC / "JPEGImages"), "--labels",
              str(VOC / "SegmentationClass"), "--split", str(tmp_path / "ids.txt")])
    assert s["mean_iu"] == pytest.approx(t[15] / sum(t.values()) / 3)
    assert "mean_iu 0." in capsys.readouterr().out


def test_compute_hist_scores_every_image_of_each_batch(tmp_path):
    """Batch 2 over 4 ids, twice: every image scored and saved under its id, and the second call starts where the
    split starts again; a batch that does not divide the ids is refused."""
    import h5py
    from solver.score import compute_hist
    rng = numpy.random.default_rng(3)
    scores = rng.normal(size=(4, 4, 5, 6)).astype(numpy.float32)
    labels = rng.integers(0, 4, size=(4, 1, 5, 6)).astype(numpy.float32)
    labels[:, :, 0, 0] = 255
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["score"], f["label"] = scores, labels
    (tmp_path / "list.txt").write_text(str(tmp_path / "d.h5") + "\n")
    (tmp_path / "val.prototxt").write_text(
        f'layer {{ name: "data" type: "HDF5Data" top: "score" top: "label" '
        f'hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 2 }} }}\n')
    net = Net(str(tmp_path / "val.prototxt"), phase="TEST")
    expected = sum(fast_hist(labels[k, 0], scores[k].argmax(0), 4) for k in range(4))
    for run in range(2):
        hist, loss = compute_hist(net, str(tmp_path / f"segs{run}"), ["a", "b", "c", "d"])
        numpy.testing.assert_array_equal(hist, expected)
        assert hist.sum() == 4 * (5 * 6 - 1)
        assert math.isnan(loss)                                   # no loss blob
        for k, name in enumerate("abcd"):
            numpy.testing.assert_array_equal(numpy.array(Image.open(tmp_path / f"segs{run}" / f"{name}.png")),
                                             scores[k].argmax(0))
    with pytest.raises(ValueError, match="batches of 2, which does not divide the 3 ids"):
        compute_hist(net, None, ["a", "b", "c"])
