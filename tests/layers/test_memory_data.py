"""MemoryData against Caffe's memory_data_layer.cpp: Reset's checks, consecutive batches with wrap-around, the
label's shapes, arrays kept rather than copied, no transform on Reset (with Caffe's warning), set_batch_size,
and a clear error for a forward before any reset (Caffe aborts)."""
import numpy
import pytest

from layers import Net, backend


def net_text(batch=2, channels=2, height=3, width=1, transform=""):
    return (f'layer {{ name: "mem" type: "MemoryData" top: "data" top: "label" {transform} memory_data_param '
            f'{{ batch_size: {batch} channels: {channels} height: {height} width: {width} }} }}')


def rows(n, channels=2, height=3, width=1):
    data = numpy.arange(n * channels * height * width, dtype=numpy.float32).reshape(n, channels, height, width)
    return data, numpy.arange(n, dtype=numpy.float32) + 100


def test_consecutive_batches_wrap_around(device):
    net = Net(net_text(), phase="TEST", device=device)
    assert net.blobs["data"].shape == (2, 2, 3, 1) and net.blobs["label"].shape == (2,)
    data, labels = rows(6)
    net.layers[0].reset(data, labels, 6)
    for k in range(4):                                     # 0-1, 2-3, 4-5, then 0-1 again
        net.forward()
        first = 2 * k % 6
        assert net.blobs["label"].shape == (2, 1, 1, 1)   # Forward_cpu reshapes the label to 4 axes
        assert backend.to_cpu(net.blobs["label"].data).ravel().tolist() == [100 + first, 101 + first]
        assert numpy.array_equal(backend.to_cpu(net.blobs["data"].data), data[first:first + 2])
        assert net.blobs["data"].data.dtype == numpy.float32


def test_reset_keeps_the_arrays_and_restarts(recwarn):
    net = Net(net_text(transform="transform_param { scale: 10 }"), phase="TEST")
    layer = net.layers[0]
    data, labels = rows(4)
    layer.reset(data, labels, 4)
    assert "MemoryData does not transform array data on Reset()" in str(recwarn.pop(UserWarning).message)
    net.forward()
    data[2:] = -1                                          # Caffe keeps the pointer: later writes are read
    net.forward()
    assert (net.blobs["data"].data == -1).all()            # and scale was not applied
    layer.reset(data, labels, 2)                           # n may be less than the arrays hold; pos goes to 0
    net.forward()
    assert net.blobs["label"].data.ravel().tolist() == [100, 101]


def test_set_batch_size_changes_later_batches():
    net = Net(net_text(batch=2), phase="TEST")
    layer = net.layers[0]
    layer.reset(*rows(6), 6)
    layer.set_batch_size(3)
    net.forward()
    assert net.blobs["data"].shape == (3, 2, 3, 1) and net.blobs["label"].data.ravel().tolist() == [100, 101, 102]
    layer.set_batch_size(4)
    with pytest.raises(ValueError, match="MemoryData layer 'mem': batch_size 4 does not divide the 6 rows"):
        net.forward()


def test_errors_name_the_layer():
    net = Net(net_text(batch=4), phase="TEST")
    layer = net.layers[0]
    with pytest.raises(ValueError, match=r"MemoryData layer 'mem': has no data: call reset\(data, labels, n\)"):
        net.forward()
    with pytest.raises(ValueError, match="MemoryData layer 'mem': n must be a multiple of batch size: got n = 6"):
        layer.reset(*rows(6), 6)
    with pytest.raises(ValueError, match=r"needs 48 data values \(8 x 2 x 3 x 1\) and 8 labels, got 24 and 4"):
        layer.reset(*rows(4), 8)
    with pytest.raises(ValueError, match="batch_size, channels, height, and width must be specified and positive"):
        Net(net_text(height=0), phase="TEST")
    with pytest.raises(ValueError, match="takes exactly 2 top blob"):
        Net(net_text().replace(' top: "label"', ""), phase="TEST")
