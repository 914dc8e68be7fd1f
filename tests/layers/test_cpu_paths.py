"""The CPU fast paths outside the convolution kernels: MAX pooling without an argmax where no backward can
follow (and its mask top), Net.release_blobs for TEST-phase inference, and the fallbacks for arrays the
slab-parallel code cannot take."""
import numpy
import pytest

from layers import Blob, Net
from tests.gradient_check import make_layer, run_layer

rng = numpy.random.default_rng(11)

DEPLOY = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 17 dim: 19 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 20 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" top: "mask"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "conv2" type: "Convolution" bottom: "pool" top: "conv2"
        convolution_param { num_output: 16 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "score" type: "Convolution" bottom: "pool2" top: "score"
        convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "gaussian" std: 0.3 } } }
"""


def max_pool_reference(x, k, s, p, oh, ow):
    """Caffe's MAX pooling by loops: (values, flat argmax), the first maximum in row-major order winning."""
    n, c, h, w = x.shape
    y = numpy.empty((n, c, oh, ow))
    arg = numpy.empty((n, c, oh, ow), dtype=int)
    for i in range(oh):
        for j in range(ow):
            y0, x0 = max(i * s - p, 0), max(j * s - p, 0)
            y1, x1 = min(i * s - p + k, h), min(j * s - p + k, w)
            window = x[:, :, y0:y1, x0:x1].reshape(n, c, -1)
            best = window.argmax(axis=2)
            y[:, :, i, j] = window.max(axis=2)
            arg[:, :, i, j] = (y0 + best // (x1 - x0)) * w + x0 + best % (x1 - x0)
    return y, arg


def test_deploy_net_max_pooling_keeps_no_argmax_but_gives_caffes_values_and_mask():
    net = Net(DEPLOY)
    x = rng.normal(size=(2, 3, 17, 19))
    net.forward(data=x)
    pool, pool2 = net.layer_dict["pool"], net.layer_dict["pool2"]
    assert not any(net.layer_need_backward)                       # a deploy net: no backward can follow
    assert pool2.argmax is None
    assert pool.argmax is not None                                # the mask top needs it
    conv = net.blobs["conv"].data
    values, arg = max_pool_reference(conv, 3, 2, 1, *net.blobs["pool"].shape[2:])
    numpy.testing.assert_array_equal(net.blobs["pool"].data, values.astype(numpy.float32))
    numpy.testing.assert_array_equal(net.blobs["mask"].data, arg)
    values2, _ = max_pool_reference(net.blobs["conv2"].data, 2, 2, 0, *net.blobs["pool2"].shape[2:])
    numpy.testing.assert_array_equal(net.blobs["pool2"].data, values2.astype(numpy.float32))


def test_max_pooling_backward_without_argmax_is_refused():
    net = Net(DEPLOY)
    net.forward(data=rng.normal(size=(2, 3, 17, 19)))
    layer = net.layer_dict["pool2"]
    top, bottom = net.blobs["pool2"], net.blobs["conv2"]
    with pytest.raises(ValueError, match="pool2.*argmax"):
        layer.run_backward([top], [True], [bottom])


def test_release_blobs_frees_what_no_later_layer_reads_and_keeps_the_answers():
    net = Net(DEPLOY)
    x = rng.normal(size=(2, 3, 17, 19))
    full = {name: array.copy() for name, array in net.forward(data=x).items()}
    kept = {name: blob.data.copy() for name, blob in net.blobs.items()}
    net.release_blobs = True
    out = net.forward(data=x, blobs=["pool"])
    assert list(out) == net.outputs + ["pool"]
    for name in out:
        numpy.testing.assert_array_equal(out[name], kept[name])
        numpy.testing.assert_array_equal(net.blobs[name].data, kept[name])
    freed = {name for name, blob in net.blobs.items() if blob.count == 0}
    assert freed == {"conv", "conv2", "pool2"}                    # read by later layers only; data is an input
    numpy.testing.assert_array_equal(net.blobs["data"].data, x.astype(numpy.float32))
    again = net.forward(data=x)                                   # the freed blobs come back on the next pass
    numpy.testing.assert_array_equal(again["score"], full["score"])
    with pytest.raises(ValueError, match="release_blobs"):
        net.backward()


def test_release_blobs_keeps_no_more_arrays_when_every_input_has_another_shape():
    """Shift-and-stitch and inference on images of many sizes reshape the net every pass: the pool of freed
    arrays stays one array per freed blob instead of growing by one each pass."""
    net = Net(DEPLOY)
    net.release_blobs = True
    sizes = []
    for k in range(12):
        net.forward(data=rng.normal(size=(2, 3, 17 + k, 19 - k % 5)))
        sizes.append(len(net._spare))
    assert max(sizes) <= 4 and len(set(sizes[6:])) == 1             # at most the freed blobs' arrays, steady


def test_release_blobs_is_ignored_in_train_phase():
    net = Net(DEPLOY, phase="TRAIN")
    net.release_blobs = True
    net.forward(data=rng.normal(size=(2, 3, 17, 19)))
    assert all(blob.count for blob in net.blobs.values())


def test_relu_and_pooling_take_non_contiguous_blobs():
    x = rng.normal(size=(2, 8, 9, 11)).astype(numpy.float32)
    relu = make_layer('name: "r" type: "ReLU" bottom: "x" top: "y"')
    bottoms, tops = run_layer(relu, x)
    bottoms[0].data = numpy.asfortranarray(x)                     # a blob may be handed any strided array
    tops[0].data = numpy.asfortranarray(numpy.zeros_like(x))
    relu.run_forward(bottoms, tops)
    numpy.testing.assert_array_equal(tops[0].data, numpy.maximum(x, 0))
    pool = make_layer('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 2 '
                      'stride: 2 }')
    bottoms, tops = run_layer(pool, x)
    reference = tops[0].data.copy()
    bottoms[0].data = numpy.asfortranarray(x)
    pool.run_forward(bottoms, tops)
    numpy.testing.assert_array_equal(tops[0].data, reference)


def test_convolution_falls_back_for_arrays_blas_cannot_take():
    conv = make_layer('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 20 '
                      'kernel_size: 3 pad: 1 weight_filler { type: "gaussian" } }')
    x = rng.normal(size=(1, 16, 7, 9)).astype(numpy.float32)
    bottoms, tops = run_layer(conv, x)
    reference = tops[0].data.copy()
    half = Blob(*x.shape, dtype=numpy.float16)                    # no half-precision BLAS: the generic path
    half.data[...] = x
    conv16 = make_layer('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 20 '
                        'kernel_size: 3 pad: 1 }')
    top16 = Blob(dtype=numpy.float16)
    conv16.run_setup([half], [top16])
    conv16.blobs[0].data[...] = conv.blobs[0].data
    conv16.run_forward([half], [top16])
    numpy.testing.assert_allclose(top16.data, reference, rtol=2e-2, atol=5e-2)
