"""HDF5Data: rows in order across files with wrap-around (Caffe's Next()), shuffling, fast_forward equal to that
many forwards, path resolution (base_dir, working directory, the list's folder) and errors that say what to fix."""
import h5py
import numpy
import pytest

from layers import Net, backend
from layers.rng import seed


def write_h5(path, rows, start=0, extra=None):
    with h5py.File(path, "w") as f:
        f["data"] = numpy.arange(start, start + rows, dtype=numpy.float64).reshape(rows, 1) * numpy.ones((1, 3))
        f["label"] = numpy.arange(start, start + rows, dtype=numpy.int32)        # integers load as float32 too
        for k, v in (extra or {}).items():
            f[k] = v


def net_text(source, batch=2, shuffle=False, tops=("data", "label")):
    tops_text = "".join(f' top: "{t}"' for t in tops)
    return (f'layer {{ name: "d" type: "HDF5Data"{tops_text} '
            f'hdf5_data_param {{ source: "{source}" batch_size: {batch} shuffle: {str(shuffle).lower()} }} }}')


def batches(net, n):
    out = []
    for _ in range(n):
        net.forward()
        out.append(net.blobs["label"].data.copy())
    return out


@pytest.fixture
def two_files(tmp_path):
    write_h5(tmp_path / "a.h5", 3, 0)
    write_h5(tmp_path / "b.h5", 2, 100)
    (tmp_path / "list.txt").write_text("a.h5\n  b.h5\n")
    return tmp_path


def test_rows_in_order_across_files_and_wrapping(two_files, monkeypatch):
    monkeypatch.chdir(two_files)
    net = Net(net_text("list.txt", batch=2), phase="TRAIN")
    assert net.blobs["data"].shape == (2, 3) and net.blobs["label"].shape == (2,)
    assert [b.tolist() for b in batches(net, 4)] == [[0, 1], [2, 100], [101, 0], [1, 2]]
    assert net.blobs["data"].data.dtype == numpy.float32
    assert numpy.array_equal(net.blobs["data"].data, [[1, 1, 1], [2, 2, 2]])
    assert net.layer_need_backward == [False]


def test_shuffle_visits_every_row_once_per_pass(two_files, monkeypatch):
    monkeypatch.chdir(two_files)
    seed(5)
    net = Net(net_text("list.txt", batch=1, shuffle=True), phase="TRAIN")
    seen = [float(b[0]) for b in batches(net, 15)]
    for k in range(3):                         # each pass reads all 5 rows, a whole file at a time
        one_pass = seen[5 * k:5 * k + 5]
        assert sorted(one_pass[:3]) == [0, 1, 2] or sorted(one_pass[:2]) == [100, 101]
        assert sorted(one_pass) == [0, 1, 2, 100, 101]
    seed(5)
    again = Net(net_text("list.txt", batch=1, shuffle=True), phase="TRAIN")
    assert [float(b[0]) for b in batches(again, 15)] == seen        # seeded: repeatable
    assert seen[:5] != [0, 1, 2, 100, 101] or seen[5:10] != [0, 1, 2, 100, 101]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("skip", [0, 1, 2, 3, 7, 12])
def test_fast_forward_equals_that_many_forwards(two_files, monkeypatch, shuffle, skip):
    monkeypatch.chdir(two_files)
    seed(11)
    read = Net(net_text("list.txt", batch=2, shuffle=shuffle), phase="TRAIN")
    expected = batches(read, skip + 4)[skip:]
    seed(11)
    skipped = Net(net_text("list.txt", batch=2, shuffle=shuffle), phase="TRAIN")
    skipped.layers[0].fast_forward(skip)
    assert [b.tolist() for b in batches(skipped, 4)] == [b.tolist() for b in expected]


def test_paths_resolve_against_base_dir_then_cwd_then_the_list_folder(tmp_path, monkeypatch):
    (tmp_path / "solver_dir" / "lists").mkdir(parents=True)
    (tmp_path / "cwd").mkdir()
    write_h5(tmp_path / "solver_dir" / "lists" / "beside_list.h5", 2, 10)
    write_h5(tmp_path / "cwd" / "in_cwd.h5", 2, 20)
    (tmp_path / "solver_dir" / "lists" / "l.txt").write_text("beside_list.h5 in_cwd.h5\n")
    monkeypatch.chdir(tmp_path / "cwd")
    net = Net(net_text("lists/l.txt", batch=4), phase="TRAIN", base_dir=str(tmp_path / "solver_dir"))
    assert batches(net, 1)[0].tolist() == [10, 11, 20, 21]
    with pytest.raises(ValueError, match=r"HDF5Data layer 'd': source list 'lists/l.txt' not found \(looked for "):
        Net(net_text("lists/l.txt"), phase="TRAIN")          # no base_dir: the working directory only


@pytest.mark.parametrize("setup, message", [
    (lambda p: (p / "l.txt").write_text("missing.h5\n"), r"HDF5 file 'missing.h5' not found .* \(listed in l.txt\)"),
    (lambda p: (p / "l.txt").write_text("\n"), "names no HDF5 file"),
    (lambda p: (write_h5(p / "x.h5", 3), (p / "l.txt").write_text("x.h5")), None),
])
def test_source_list_errors(tmp_path, monkeypatch, setup, message):
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    if message is None:
        with pytest.raises(ValueError, match=r"has no dataset 'score'.*the file has: data, label"):
            Net(net_text("l.txt", tops=("data", "score")), phase="TRAIN")
    else:
        with pytest.raises(ValueError, match=message):
            Net(net_text("l.txt"), phase="TRAIN")


def test_datasets_must_agree_on_rows_and_shapes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["data"] = numpy.zeros((4, 3), numpy.float32)
        f["label"] = numpy.zeros(3, numpy.float32)
    (tmp_path / "l.txt").write_text("bad.h5")
    with pytest.raises(ValueError, match="dataset 'label' has 3 rows but 'data' has 4"):
        Net(net_text("l.txt"), phase="TRAIN")
    write_h5(tmp_path / "a.h5", 2)
    with h5py.File(tmp_path / "wide.h5", "w") as f:
        f["data"] = numpy.zeros((2, 5), numpy.float32)
        f["label"] = numpy.zeros(2, numpy.float32)
    (tmp_path / "l2.txt").write_text("a.h5 wide.h5")
    net = Net(net_text("l2.txt", batch=2), phase="TRAIN")
    with pytest.raises(ValueError, match=r"rows of 'data' have shape \(5,\), but the first file's have \(3,\)"):
        net.forward()


def test_transform_param_and_batch_size_are_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_h5(tmp_path / "a.h5", 2)
    (tmp_path / "l.txt").write_text("a.h5")
    with pytest.raises(ValueError, match="does not transform data; delete transform_param"):
        Net(net_text("l.txt").replace("hdf5_data_param", "transform_param { scale: 2 } hdf5_data_param"),
            phase="TRAIN")
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        Net(net_text("l.txt", batch=0), phase="TRAIN")


def test_gpu_tops(two_files, monkeypatch, device):
    monkeypatch.chdir(two_files)
    net = Net(net_text("list.txt", batch=3), phase="TRAIN", device=device)
    net.forward()
    assert backend.to_cpu(net.blobs["label"].data).tolist() == [0, 1, 2]
