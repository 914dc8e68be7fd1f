"""Data against Caffe's data_layer.cpp on LMDBs written here: records in cursor (bytewise key) order with
wrap-around, raw, float_data and encoded Datums (decoded as cv2.imdecode does, also with force_color /
force_gray), labels as float, transform_param, rand_skip, fast_forward equal to forwards, the optional label
top, and clear errors: no lmdb package (naming the extra), LevelDB, missing or empty databases, bad records."""
import io
import sys

import numpy
import pytest
from PIL import Image

from layers import Net, backend
from layers.rng import seed
from netspec import caffe_pb2

cv2 = pytest.importorskip("cv2")


@pytest.fixture
def lmdb():
    return pytest.importorskip("lmdb")


def write_db(lmdb, path, records):
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, datum in records:
            txn.put(key, datum if isinstance(datum, bytes) else datum.SerializeToString())
    env.close()


def raw(image, label):
    c, h, w = image.shape
    return caffe_pb2.Datum(channels=c, height=h, width=w, data=image.tobytes(), label=label)


def encoded(image_hwc, label, fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(image_hwc).save(buffer, format=fmt)
    return caffe_pb2.Datum(data=buffer.getvalue(), encoded=True, label=label)


def net_text(source, batch=2, tops=("data", "label"), transform="", backend_name="LMDB", **param):
    extra = "".join(f" {k}: {v}" for k, v in param.items())
    top_text = "".join(f' top: "{t}"' for t in tops)
    return (f'layer {{ name: "db" type: "Data"{top_text} {transform} data_param {{ source: "{source}" '
            f'batch_size: {batch} backend: {backend_name}{extra} }} }}')


IMAGES = numpy.random.default_rng(0).integers(0, 256, (4, 3, 5, 6), dtype=numpy.uint8)


@pytest.fixture
def raw_db(lmdb, tmp_path, monkeypatch):
    """Four raw 3 x 5 x 6 Datums, put in the order 2, 0, 3, 1 under keys that sort 0, 1, 2, 3."""
    monkeypatch.chdir(tmp_path)
    write_db(lmdb, tmp_path / "raw_lmdb", [(f"{k:08d}".encode(), raw(IMAGES[k], 10 + k)) for k in (2, 0, 3, 1)])
    return tmp_path / "raw_lmdb"


def forward(net):
    net.forward()
    return backend.to_cpu(net.blobs["data"].data).copy(), backend.to_cpu(net.blobs["label"].data).copy()


def test_raw_records_in_key_order_with_wrap_around(raw_db, device):
    net = Net(net_text("raw_lmdb", batch=3), phase="TEST", device=device)
    assert net.blobs["data"].shape == (3, 3, 5, 6) and net.blobs["label"].shape == (3,)
    for k in range(3):                                       # 9 records from 4: wraps twice
        data, label = forward(net)
        order = [(3 * k + i) % 4 for i in range(3)]
        assert label.dtype == numpy.float32 and label.tolist() == [10 + r for r in order]
        assert numpy.array_equal(data, IMAGES[order].astype(numpy.float32))


def test_nets_on_one_lmdb_read_it_independently(raw_db):
    train, test = Net(net_text("raw_lmdb", batch=3), phase="TRAIN"), Net(net_text("raw_lmdb", batch=1), phase="TEST")
    assert forward(train)[1].tolist() == [10, 11, 12]
    assert forward(test)[1].tolist() == [10] and forward(train)[1].tolist() == [13, 10, 11]


def test_transform_param_applies(raw_db):
    net = Net(net_text("raw_lmdb", batch=1, transform="transform_param { crop_size: 3 mean_value: [1, 2, 3] "
                                                      "scale: 0.25 }"), phase="TEST")
    data, _ = forward(net)
    want = (IMAGES[0, :, 1:4, 1:4].astype(numpy.float32) - numpy.float32([1, 2, 3]).reshape(3, 1, 1)) * 0.25
    assert net.blobs["data"].shape == (1, 3, 3, 3) and numpy.array_equal(data[0], want)


def test_float_data_and_a_single_top(lmdb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = numpy.linspace(-1, 1, 2 * 2 * 3, dtype=numpy.float32)
    write_db(lmdb, tmp_path / "f", [(b"a", caffe_pb2.Datum(channels=2, height=2, width=3, float_data=values))])
    net = Net(net_text("f", batch=2, tops=("data",)), phase="TEST")
    net.forward()
    assert numpy.array_equal(net.blobs["data"].data, numpy.stack([values.reshape(2, 2, 3)] * 2))


@pytest.mark.parametrize("force, flag", [("", cv2.IMREAD_UNCHANGED), ("force_color: true", cv2.IMREAD_COLOR),
                                         ("force_gray: true", cv2.IMREAD_GRAYSCALE)])
def test_encoded_records_decode_as_imdecode(lmdb, tmp_path, monkeypatch, force, flag):
    monkeypatch.chdir(tmp_path)
    rgba = numpy.random.default_rng(1).integers(0, 256, (5, 6, 4), dtype=numpy.uint8)
    records = [(b"1", encoded(rgba, 4)), (b"2", encoded(rgba[:, :, :3], 5, "JPEG"))]
    write_db(lmdb, tmp_path / "enc", records)
    net = Net(net_text("enc", batch=1, transform=f"transform_param {{ {force} }}"), phase="TEST")
    for key, datum in records:                               # a batch each: a 4-channel one, then a 3-channel one
        want = cv2.imdecode(numpy.frombuffer(datum.data, numpy.uint8), flag)
        want = (want if want.ndim == 3 else want[:, :, None]).transpose(2, 0, 1)
        data, label = forward(net)
        assert label.tolist() == [datum.label] and numpy.array_equal(data[0], want.astype(numpy.float32))
    if not force:
        with pytest.raises(ValueError, match=r"record b'2' of enc is 3 x 5 x 6, but this batch's first record "
                                             r"makes it 4 x 5 x 6; every record of a batch needs one size"):
            Net(net_text("enc", batch=2), phase="TEST").forward()


def test_rand_skip_and_fast_forward(raw_db):
    seed(4)
    net = Net(net_text("raw_lmdb", batch=1, rand_skip=3), phase="TRAIN")
    assert forward(net)[1].tolist() == [10 + int(numpy.random.default_rng(4).integers(2 ** 32)) % 3]
    text = net_text("raw_lmdb", batch=3, transform="transform_param { mirror: true crop_size: 4 }")
    seed(6)
    read = Net(text, phase="TRAIN")
    expected = [forward(read) for _ in range(5)][2:]
    seed(6)
    skipped = Net(text, phase="TRAIN")
    skipped.layers[0].fast_forward(2)
    for (data, label), (want_data, want_label) in zip([forward(skipped) for _ in range(3)], expected):
        assert numpy.array_equal(data, want_data) and numpy.array_equal(label, want_label)


def test_without_the_lmdb_package_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                              # runs whether lmdb is installed or not
    monkeypatch.setitem(sys.modules, "lmdb", None)          # `import lmdb` now raises ImportError
    with pytest.raises(ValueError, match=r"Data layer 'db': reading an LMDB needs the lmdb package: "
                                         r"pip install fcn-caffe\[lmdb\]"):
        Net(net_text("train_lmdb"), phase="TEST")


def test_leveldb_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "an_lmdb").mkdir()
    (tmp_path / "an_lmdb" / "data.mdb").write_bytes(b"")
    with pytest.raises(ValueError, match=r"backend LEVELDB is not supported, only LMDB \(this folder holds an "
                                         r"LMDB: set backend: LMDB\)"):
        Net(net_text("an_lmdb", backend_name="LEVELDB"), phase="TEST")
    (tmp_path / "level").mkdir()
    with pytest.raises(ValueError, match="not supported, only LMDB; convert it to an LMDB"):
        Net(net_text("level").replace(" backend: LMDB", ""), phase="TEST")       # LEVELDB is the default


def test_database_errors(lmdb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"LMDB 'nowhere' not found: data_param.source must name an LMDB folder"):
        Net(net_text("nowhere"), phase="TEST")
    write_db(lmdb, tmp_path / "empty", [])
    with pytest.raises(ValueError, match="LMDB empty holds no records"):
        Net(net_text("empty"), phase="TEST")
    write_db(lmdb, tmp_path / "junk", [(b"k", b"\xff\xff\xff")])
    with pytest.raises(ValueError, match=r"record b'k' of junk is not a Datum"):
        Net(net_text("junk"), phase="TEST")
    write_db(lmdb, tmp_path / "short", [(b"k", caffe_pb2.Datum(channels=1, height=2, width=2, data=b"abc"))])
    with pytest.raises(ValueError, match=r"record b'k' of short: a 1 x 2 x 2 Datum holding 3 values"):
        Net(net_text("short"), phase="TEST")
    write_db(lmdb, tmp_path / "bad_image", [(b"k", caffe_pb2.Datum(data=b"not an image", encoded=True))])
    with pytest.raises(ValueError, match=r"record b'k' of bad_image: could not decode its image"):
        Net(net_text("bad_image"), phase="TEST")
