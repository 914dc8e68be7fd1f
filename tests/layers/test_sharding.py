"""layers/sharding.py: rank r of N reads the batches a single process reads at positions r, r+N, r+2N, ... for
every data layer that can skip batches (HDF5Data, FCN's dataset layers as native types and as Python layers,
SegFolderData with random crops and mirrors); and skip_to, the position a restore moves to."""
import numpy
import pytest

from demo import pipeline, synthetic
from layers import Net
from layers.sharding import Shard


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    synthetic.write_voc(str(root), seed=1, n_train=6, n_val=2, size=32)
    return root


def data_layer(voc, kind):
    if kind == "HDF5Data":
        return None
    if kind.startswith("SegFolderData"):
        params = dict(pipeline.seg_data_param(str(voc), "train", 2, 32, 3), crop=24, mirror=True)
        module, cls = "seg_folder", "SegFolderDataLayer"
    else:
        params = {"voc_dir": str(voc), "split": "train", "mean": (0, 0, 0), "seed": 7}
        module, cls = "voc_layers", "VOCSegDataLayer"
    if kind.endswith("python"):
        return (f'type: "Python" python_param {{ module: "{module}" layer: "{cls}" '
                f'param_str: "{params!r}" }}')
    return f'type: "{kind.split("-")[0]}" python_param {{ param_str: "{params!r}" }}'


def build(tmp_path, voc, kind):
    if kind == "HDF5Data":
        import h5py
        with h5py.File(tmp_path / "d.h5", "w") as f:
            f["data"] = numpy.arange(7 * 2, dtype=numpy.float32).reshape(7, 2)
            f["label"] = numpy.arange(7, dtype=numpy.float32)
        (tmp_path / "list.txt").write_text(f"{tmp_path / 'd.h5'}\n")
        layer = f'type: "HDF5Data" hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 3 shuffle: true }}'
    else:
        layer = data_layer(voc, kind)
    return Net(f'layer {{ name: "data" {layer} top: "data" top: "label" }}', phase="TRAIN")


KINDS = ["HDF5Data", "VOCSegData", "VOCSegData-python", "SegFolderData", "SegFolderData-python"]


@pytest.mark.parametrize("kind", KINDS)
def test_ranks_read_the_single_sequence_interleaved(tmp_path, voc, kind):
    from layers import rng
    rng.seed(1)
    single = build(tmp_path, voc, kind)
    sequence = [single.forward()["data"].copy() for _ in range(6)]
    for rank in range(2):
        rng.seed(1)                                   # every rank builds its net with the same seed
        net = build(tmp_path, voc, kind)
        shard = Shard(net, rank, 2)
        for k in range(3):
            numpy.testing.assert_array_equal(net.forward()["data"], sequence[rank + 2 * k])
        assert shard.position == 6


@pytest.mark.parametrize("kind", ["HDF5Data", "SegFolderData"])
def test_skip_to_goes_where_the_single_sequence_is(tmp_path, voc, kind):
    from layers import rng
    rng.seed(1)
    single = build(tmp_path, voc, kind)
    sequence = [single.forward()["data"].copy() for _ in range(7)]
    rng.seed(1)
    net = build(tmp_path, voc, kind)
    shard = Shard(net, 1, 2)
    shard.skip_to(4)                                  # a restore after 4 batches of the single sequence
    numpy.testing.assert_array_equal(net.forward()["data"], sequence[5])
    with pytest.raises(ValueError, match="gone past batch 2"):
        shard.skip_to(2)
