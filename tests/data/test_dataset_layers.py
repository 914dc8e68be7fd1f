"""SIFT Flow, NYUDv2 and PASCAL-Context data layers: the real NYUDv2 frame, and label files written here in
each dataset's .mat layout."""
import shutil

import numpy
import pytest
import scipy.io
from PIL import Image

from tests.conftest import FIXTURES
from tests.data.test_voc_layers import data_layer, expected_data, run

NYUD = FIXTURES / "nyud"
SUB = "spatial_envelope_256x256_static_8outdoorcategories"


def test_siftflow_semantic_and_geometric_labels(tmp_path):
    rng = numpy.random.default_rng(3)
    for folder in ("Images", "SemanticLabels", "GeoLabels"):
        (tmp_path / folder / SUB).mkdir(parents=True)
    rgb = rng.integers(0, 256, (16, 12, 3), dtype=numpy.uint8)
    Image.fromarray(rgb).save(tmp_path / "Images" / SUB / "coast_a1.jpg", quality=100)
    sem = rng.integers(0, 34, (16, 12)).astype(numpy.float64)      # 0 = void, 1..33 classes (MATLAB doubles)
    geo = rng.integers(-1, 4, (16, 12)).astype(numpy.int32)         # -1 and 0 are both void
    scipy.io.savemat(tmp_path / "SemanticLabels" / SUB / "coast_a1.mat", {"S": sem, "names": ["sky"]})
    scipy.io.savemat(tmp_path / "GeoLabels" / SUB / "coast_a1.mat", {"S": geo})
    (tmp_path / "trainval.txt").write_text("coast_a1\n")
    layer = data_layer("SIFTFlowSegData", f"{{'siftflow_dir': '{tmp_path}', 'split': 'trainval', 'seed': 1337}}",
                       tops=("data", "sem", "geo"))
    tops = run(layer, 3)
    layer.run_forward([], tops)
    data, sem_top, geo_top = (t.data[0] for t in tops)
    numpy.testing.assert_allclose(data, expected_data(tmp_path / "Images" / SUB / "coast_a1.jpg",
                                                      (114.578, 115.294, 108.353)), atol=1e-4)
    numpy.testing.assert_array_equal(sem_top[0], numpy.where(sem == 0, 255, sem - 1))
    numpy.testing.assert_array_equal(geo_top[0], numpy.where(geo <= 0, 255, geo - 1))
    assert set(numpy.unique(geo_top).tolist()) <= {0, 1, 2, 255}


def make_nyud(root, ids=("5001",), with_hha=True):
    rng = numpy.random.default_rng(4)
    for sub in ("data/images", "data/depth", "data/hha", "segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    labels = {}
    for i in ids:
        shutil.copy(NYUD / "images.png", root / "data" / "images" / f"img_{i}.png")
        shutil.copy(NYUD / "depth.png", root / "data" / "depth" / f"img_{i}.png")
        if with_hha:
            hha = rng.integers(0, 256, (425, 560, 3), dtype=numpy.uint8)
            Image.fromarray(hha).save(root / "data" / "hha" / f"img_{i}.png")
        labels[i] = rng.integers(0, 41, (425, 560)).astype(numpy.uint16)      # 0 = void, 1..40 classes
        scipy.io.savemat(root / "segmentation" / f"img_{i}.mat", {"segmentation": labels[i]})
    (root / "test.txt").write_text("\n".join(ids) + "\n")
    return labels


@pytest.mark.parametrize("tops", [["color", "label"], ["color", "depth", "label"], ["hha", "label"],
                                  ["label", "color", "hha"]])
def test_nyud_tops_by_parameter(tmp_path, tops):
    labels = make_nyud(tmp_path)
    layer = data_layer("NYUDSegData", f"{{'nyud_dir': '{tmp_path}', 'split': 'test', 'tops': {tops}}}", tops=tops)
    blobs = run(layer, len(tops))
    layer.run_forward([], blobs)
    out = {name: blob.data[0] for name, blob in zip(tops, blobs)}
    if "color" in out:
        numpy.testing.assert_allclose(out["color"], expected_data(NYUD / "images.png", (116.190, 97.203, 92.318)),
                                      atol=1e-4)
    if "depth" in out:
        depth = numpy.array(Image.open(NYUD / "depth.png"), dtype=numpy.float64)
        assert out["depth"].shape == (1, 425, 560)
        numpy.testing.assert_allclose(out["depth"][0], numpy.log(depth) - 7.844, atol=1e-5)
    if "hha" in out:              # HHA keeps its channel order
        hha = numpy.array(Image.open(tmp_path / "data" / "hha" / "img_5001.png"), dtype=numpy.float64)
        numpy.testing.assert_allclose(out["hha"], (hha - (132.431, 94.076, 118.477)).transpose(2, 0, 1), atol=1e-4)
    label = labels["5001"]
    numpy.testing.assert_array_equal(out["label"][0], numpy.where(label == 0, 255, label - 1))


def test_nyud_rejects_unknown_top_and_count_mismatch(tmp_path):
    make_nyud(tmp_path, with_hha=False)
    layer = data_layer("NYUDSegData", f"{{'nyud_dir': '{tmp_path}', 'split': 'test', 'tops': ['rgb', 'label']}}")
    with pytest.raises(ValueError, match=r"unknown output\(s\) \['rgb'\]"):
        run(layer)
    layer = data_layer("NYUDSegData", f"{{'nyud_dir': '{tmp_path}', 'split': 'test', 'tops': ['color']}}")
    with pytest.raises(ValueError, match="needs 1 top blob"):
        run(layer)


def test_pascalcontext_maps_full_labels_to_59_plus_background(tmp_path):
    voc = tmp_path / "VOC" / "VOC2010"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    ctx = tmp_path / "context"
    (ctx / "trainval").mkdir(parents=True)
    shutil.copy(FIXTURES / "voc" / "JPEGImages" / "2007_000129.jpg", voc / "JPEGImages" / "2008_000002.jpg")
    (voc / "ImageSets" / "Main" / "val.txt").write_text("2008_000002\n")
    # a small full list (the real one has 459 'index: name' lines) and a task list with the three renamed classes
    full = ["accordion", "aeroplane", "air conditioner", "bedclothes", "bicycle", "cloth", "table", "sky"]
    (ctx / "labels.txt").write_text("".join(f"{i}: {n}\n" for i, n in enumerate(full, 1)))
    task = ["aeroplane", "bedcloth", "bicycle", "clothes", "diningtable", "sky"]
    (ctx / "59_labels.txt").write_text("".join(f"{i}: {n}\n" for i, n in enumerate(task, 1)))
    label_full = numpy.random.default_rng(5).integers(0, 9, (500, 334)).astype(numpy.uint16)   # 0 = unlabelled
    scipy.io.savemat(ctx / "trainval" / "2008_000002.mat", {"LabelMap": label_full})
    layer = data_layer("PASCALContextSegData", f"{{'voc_dir': '{tmp_path / 'VOC'}', 'context_dir': '{ctx}', "
                                               f"'split': 'val'}}")
    data, label = run(layer)
    layer.run_forward([], [data, label])
    # full index -> task class: aeroplane 2->1, bedclothes 4->2, bicycle 5->3, cloth 6->4, table 7->5, sky 8->6
    lut = numpy.array([0, 0, 1, 0, 2, 3, 4, 5, 6])
    numpy.testing.assert_array_equal(label.data[0, 0], lut[label_full])
    numpy.testing.assert_allclose(data.data[0], expected_data(voc / "JPEGImages" / "2008_000002.jpg",
                                                              (104.007, 116.669, 122.679)), atol=1e-4)


def test_pascalcontext_reports_task_class_missing_from_full_list(tmp_path):
    ctx = tmp_path / "context"
    ctx.mkdir()
    (ctx / "labels.txt").write_text("1: sky\n")
    (ctx / "59_labels.txt").write_text("1: sky\n2: grass\n")
    layer = data_layer("PASCALContextSegData", f"{{'voc_dir': '{tmp_path}', 'context_dir': '{ctx}', "
                                               f"'split': 'val'}}")
    with pytest.raises(ValueError, match=r"\['grass'\] of 59_labels.txt are not in labels.txt"):
        run(layer)
