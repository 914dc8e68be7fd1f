"""caffe.Net as pycaffe's test_net.py uses it (nets written to a temp dir, real file round trips), and the rest
of pycaffe's Net surface: Caffe's index lists, the hooks, share_with, keyword-argument checks, forward_all,
forward_backward_all and set_input_arrays."""
from collections import OrderedDict

import numpy as np
import pytest

from layers import known_types

SIMPLE_NET = """name: 'testnet' force_backward: true
layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { num: 5 channels: 2 height: 3 width: 4
    num: 5 channels: 1 height: 1 width: 1
    data_filler { type: 'gaussian' std: 1 }
    data_filler { type: 'constant' } } }
layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
  convolution_param { num_output: 11 kernel_size: 2 pad: 3
    weight_filler { type: 'gaussian' std: 1 }
    bias_filler { type: 'constant' value: 2 } }
  param { decay_mult: 1 } param { decay_mult: 0 } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
  inner_product_param { num_output: 13
    weight_filler { type: 'gaussian' std: 2.5 }
    bias_filler { type: 'constant' value: -3 } } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label' top: 'loss' }
"""

DEPLOY_NET = """name: 'deploy'
layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: 'ip' type: 'Convolution' bottom: 'data' top: 'ip'
  convolution_param { num_output: 5 kernel_size: 4 weight_filler { type: 'gaussian' std: 0.1 } } }
layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }
"""


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def net_file(tmp_path):
    return write(tmp_path / "simple.prototxt", SIMPLE_NET)


@pytest.fixture
def net(caffe, net_file):
    net = caffe.Net(net_file, caffe.TRAIN)
    net.blobs["label"].data[...] = np.random.randint(13, size=net.blobs["label"].data.shape)
    return net


def test_blobs_outlive_their_net(net):
    params = sum(map(list, net.params.values()), [])
    blobs = list(net.blobs.values())
    del net
    total = sum(p.data.sum() + p.diff.sum() for p in params) + sum(b.data.sum() + b.diff.sum() for b in blobs)
    assert np.isfinite(total)


def test_layer_dict_in_layer_order(net):
    assert list(net.layer_dict) == list(net._layer_names) == ["data", "conv", "ip", "loss"]
    for i, name in enumerate(net._layer_names):
        assert net.layer_dict[name].type == net.layers[i].type


def test_forward_and_backward(net):
    out = net.forward()
    assert list(out) == ["loss"] and out["loss"] is net.blobs["loss"].data and out["loss"] > 0
    assert list(net.backward()) == []                  # no inputs: nothing to return
    assert np.abs(net.params["conv"][0].diff).sum() > 0


def test_forward_from_start_to_end(net):
    conv, ip = net.blobs["conv"], net.blobs["ip_blob"]
    conv.data[:] = np.random.uniform(size=conv.data.shape).astype(np.float32)
    out = net.forward(start="ip", end="ip")
    assert list(out) == ["ip_blob"]
    weight, bias = net.params["ip"][0].data, net.params["ip"][1].data
    manual = np.array([weight @ conv.data[i].reshape(-1) + bias for i in range(conv.data.shape[0])])
    np.testing.assert_allclose(ip.data, manual, rtol=1e-3, atol=1e-5)


def test_backward_from_start_to_end(net):
    conv, ip = net.blobs["conv"], net.blobs["ip_blob"]
    sample = np.random.uniform(size=ip.data.shape).astype(np.float32)
    ip.diff[:] = sample
    out = net.backward(start="ip", end="ip")
    assert list(out) == ["conv"]
    manual = np.array([net.params["ip"][0].data.T @ sample[i] for i in range(conv.data.shape[0])])
    np.testing.assert_allclose(conv.diff, manual.reshape(conv.data.shape), rtol=1e-3, atol=1e-5)


def test_clear_param_diffs_zeroes_in_place(net):
    net.forward()
    net.backward()
    diff = net.params["conv"][0].diff
    assert diff.max() > 0
    net.clear_param_diffs()
    assert (diff == 0).all()


def test_inputs_outputs_and_names_by_layer(net):
    assert net.inputs == [] and net.outputs == ["loss"]
    assert net.top_names == OrderedDict([("data", ["data", "label"]), ("conv", ["conv"]), ("ip", ["ip_blob"]),
                                         ("loss", ["loss"])])
    assert net.bottom_names == OrderedDict([("data", []), ("conv", ["data"]), ("ip", ["conv"]),
                                            ("loss", ["ip_blob", "label"])])


def test_caffes_index_lists(net):
    assert net._blob_names == ["data", "label", "conv", "ip_blob", "loss"]
    assert [b for b in net._blobs] == list(net.blobs.values())
    assert net._inputs == [] and net._outputs == [4]
    assert net._top_ids(0) == [0, 1] and net._bottom_ids(3) == [3, 1]
    assert net._blob_loss_weights == [0, 0, 0, 0, 1]
    assert net.blob_loss_weights == OrderedDict([("data", 0), ("label", 0), ("conv", 0), ("ip_blob", 0),
                                                 ("loss", 1)])


def test_save_and_read_in_both_constructor_forms(caffe, net, net_file, tmp_path, capsys):
    weights = str(tmp_path / "weights")                # no extension, as pycaffe's test writes it
    net.save(weights)
    legacy = caffe.Net(net_file, weights, caffe.TRAIN)
    assert "DEPRECATION WARNING" in capsys.readouterr().err
    named = caffe.Net(net_file, caffe.TRAIN, weights=weights)
    assert_same_params(net, legacy)
    assert_same_params(net, named)


def assert_same_params(net, other):
    for name in net.params:
        for mine, theirs in zip(net.params[name], other.params[name]):
            assert abs(mine.data - theirs.data).sum() == 0


def test_save_hdf5_and_load_hdf5(caffe, net, net_file, tmp_path):
    weights = str(tmp_path / "weights")
    net.save_hdf5(weights)
    other = caffe.Net(net_file, caffe.TRAIN)
    other.load_hdf5(weights)
    assert_same_params(net, other)


def test_save_to_an_h5_path_writes_caffes_hdf5_layout(caffe, net, net_file, tmp_path):
    import h5py
    path = str(tmp_path / "weights.caffemodel.h5")
    net.save(path)
    assert h5py.is_hdf5(path)
    other = caffe.Net(net_file, caffe.TRAIN)
    other.copy_from(path)                              # read by content, whatever the name
    assert (other.params["ip"][0].data == net.params["ip"][0].data).all()


def test_missing_files_raise_runtime_error(caffe, net_file, tmp_path):
    with pytest.raises(RuntimeError, match=r"^Could not open file .*nope\.prototxt$"):
        caffe.Net(str(tmp_path / "nope.prototxt"), caffe.TEST)
    with pytest.raises(RuntimeError, match=r"Could not open file .*nope\.caffemodel"):
        caffe.Net(net_file, caffe.TEST, weights=str(tmp_path / "nope.caffemodel"))


LEVELS_NET = """
layer { name: "data" type: "DummyData" top: "data" dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "NoLevel" type: "InnerProduct" bottom: "data" top: "NoLevel" inner_product_param { num_output: 1 } }
layer { name: "Level0Only" type: "InnerProduct" bottom: "data" top: "Level0Only"
  include { min_level: 0 max_level: 0 } inner_product_param { num_output: 1 } }
layer { name: "Level1Only" type: "InnerProduct" bottom: "data" top: "Level1Only"
  include { min_level: 1 max_level: 1 } inner_product_param { num_output: 1 } }
layer { name: "Level>=0" type: "InnerProduct" bottom: "data" top: "Level>=0"
  include { min_level: 0 } inner_product_param { num_output: 1 } }
layer { name: "Level>=1" type: "InnerProduct" bottom: "data" top: "Level>=1"
  include { min_level: 1 } inner_product_param { num_output: 1 } }
"""

STAGES_NET = """
layer { name: "data" type: "DummyData" top: "data" dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "A" type: "InnerProduct" bottom: "data" top: "A" include { stage: "A" }
  inner_product_param { num_output: 1 } }
layer { name: "B" type: "InnerProduct" bottom: "data" top: "B" include { stage: "B" }
  inner_product_param { num_output: 1 } }
layer { name: "AorB" type: "InnerProduct" bottom: "data" top: "AorB" include { stage: "A" } include { stage: "B" }
  inner_product_param { num_output: 1 } }
layer { name: "AandB" type: "InnerProduct" bottom: "data" top: "AandB" include { stage: "A" stage: "B" }
  inner_product_param { num_output: 1 } }
"""

ALL_IN_ONE_NET = """
layer { name: "train_data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } shape { dim: 1 dim: 1 dim: 1 dim: 1 } }
  include { phase: TRAIN stage: "train" } }
layer { name: "val_data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } shape { dim: 1 dim: 1 dim: 1 dim: 1 } }
  include { phase: TEST stage: "val" } }
layer { name: "deploy_data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } }
  include { phase: TEST stage: "deploy" } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
  include: { phase: TRAIN stage: "train" } include: { phase: TEST stage: "val" } }
layer { name: "pred" type: "Softmax" bottom: "ip" top: "pred" include: { phase: TEST stage: "deploy" } }
"""


def blobs_without_data(net):
    return [b for b in net.blobs if "data" not in b]


@pytest.mark.parametrize("level, blobs", [(0, ["NoLevel", "Level0Only", "Level>=0"]),
                                          (1, ["NoLevel", "Level1Only", "Level>=0", "Level>=1"])])
def test_levels(caffe, tmp_path, level, blobs):
    path = write(tmp_path / "levels.prototxt", LEVELS_NET)
    net = caffe.Net(path, caffe.TEST, level=level) if level else caffe.Net(path, caffe.TEST)
    assert blobs_without_data(net) == blobs


@pytest.mark.parametrize("stages, blobs", [(["A"], ["A", "AorB"]), (["B"], ["B", "AorB"]),
                                           (["A", "B"], ["A", "B", "AorB", "AandB"])])
def test_stages(caffe, tmp_path, stages, blobs):
    net = caffe.Net(write(tmp_path / "stages.prototxt", STAGES_NET), caffe.TEST, stages=stages)
    assert blobs_without_data(net) == blobs


@pytest.mark.parametrize("phase, stage, outputs", [("TRAIN", "train", ["loss"]), ("TEST", "val", ["loss"]),
                                                   ("TEST", "deploy", ["pred"])])
def test_all_in_one(caffe, tmp_path, phase, stage, outputs):
    net = caffe.Net(write(tmp_path / "all.prototxt", ALL_IN_ONE_NET), getattr(caffe, phase), stages=[stage])
    assert list(net.blobs["data"].shape) == [1, 1, 10, 10]
    assert net.outputs == outputs


# ------------------------------------------------------------------ beyond pycaffe's test_net.py
@pytest.fixture
def deploy(caffe, tmp_path):
    return caffe.Net(write(tmp_path / "deploy.prototxt", DEPLOY_NET), caffe.TEST)


def test_data_is_the_live_array(deploy):
    x = np.random.rand(2, 3, 4, 4).astype(np.float32)
    deploy.blobs["data"].data[...] = x                 # as infer.py feeds an image
    prob = deploy.forward()["prob"]
    np.testing.assert_allclose(prob, deploy.forward(data=x)["prob"], rtol=1e-6)
    np.testing.assert_allclose(prob.sum(axis=1), 1, rtol=1e-5)


def test_forward_keyword_inputs_are_checked_as_pycaffe(deploy):
    with pytest.raises(ValueError, match=r"^Input blob arguments do not match net inputs\."):
        deploy.forward(ip=np.zeros((2, 5, 1, 1)))
    with pytest.raises(ValueError, match=r"^Input is not batch sized"):
        deploy.forward(data=np.zeros((3, 3, 4, 4)))
    deploy.forward(data=np.ones((2, 1, 4, 4)))          # broadcast into the blob, as pycaffe assigns
    assert deploy.blobs["data"].data.shape == (2, 3, 4, 4) and (deploy.blobs["data"].data == 1).all()
    out = deploy.forward(data=np.ones((2, 3, 6, 6)))    # another size (pycaffe refuses): the net reshapes
    assert deploy.blobs["data"].data.shape == (2, 3, 6, 6) and out["prob"].shape == (2, 5, 3, 3)


def test_backward_keyword_diffs_are_checked_as_pycaffe(deploy):
    deploy.forward(data=np.random.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"^Top diff arguments do not match net outputs\."):
        deploy.backward(ip=np.zeros((2, 5, 1, 1)))
    with pytest.raises(ValueError, match=r"^Diff is not batch sized"):
        deploy.backward(prob=np.zeros((1, 5, 1, 1)))
    assert list(deploy.backward(prob=np.ones((2, 5, 1, 1)), diffs=["ip"])) == ["data", "ip"]


def test_blob_reshape_then_forward(deploy):
    deploy.blobs["data"].reshape(1, 3, 6, 6)
    deploy.reshape()                                   # Caffe's Net::Reshape: every layer, no forward
    assert deploy.blobs["prob"].data.shape == (1, 5, 3, 3)
    deploy.blobs["data"].data[...] = 1
    assert deploy.forward()["prob"].shape == (1, 5, 3, 3)


def test_forward_all_batches_and_drops_the_padding(deploy):
    x = np.random.rand(5, 3, 4, 4).astype(np.float32)
    out = deploy.forward_all(data=x, blobs=["ip"])
    assert sorted(out) == ["ip", "prob"] and out["prob"].shape == out["ip"].shape == (5, 5, 1, 1)
    np.testing.assert_allclose(out["prob"][:2], deploy.forward(data=x[:2])["prob"], rtol=1e-6)
    np.testing.assert_allclose(out["prob"][4:], deploy.forward(data=np.concatenate([x[4:], 0 * x[:1]]))["prob"][:1],
                               rtol=1e-6)


def test_forward_backward_all(deploy):
    x = np.random.rand(3, 3, 4, 4).astype(np.float32)
    outs, diffs = deploy.forward_backward_all(data=x, prob=np.ones((3, 5, 1, 1)))
    assert outs["prob"].shape == (3, 5, 1, 1) and diffs["data"].shape == (3, 3, 4, 4)


def test_hooks_run_around_each_layer(caffe, net):
    calls = []
    net.after_backward(caffe.NCCL(None, b"uid"))       # pycaffe's NCCL form: nothing to do without NCCL
    net.before_forward(lambda i: calls.append(("before_forward", i)))
    net.after_forward(lambda i: calls.append(("after_forward", i)))
    net.before_backward(lambda i: calls.append(("before_backward", i)))
    net.after_backward(lambda i: calls.append(("after_backward", i)))
    net.forward(start="ip")
    net.backward(end="ip")
    assert calls == [("before_forward", 2), ("after_forward", 2), ("before_forward", 3), ("after_forward", 3),
                     ("before_backward", 3), ("after_backward", 3), ("before_backward", 2), ("after_backward", 2)]


def test_underscore_forward_and_backward_by_index(net):
    loss = net._forward(0, 3)
    assert loss == pytest.approx(float(net.blobs["loss"].data))
    net.backward()
    before = net.params["ip"][0].diff.copy()
    net._backward(3, 2)                      # the loss top keeps its loss weight diff: the ip diffs accumulate
    np.testing.assert_allclose(net.params["ip"][0].diff, 2 * before, rtol=1e-5)


def test_share_with_uses_the_other_nets_arrays(caffe, net, net_file):
    other = caffe.Net(net_file, caffe.TEST)
    other.share_with(net)
    net.params["conv"][0].data[...] = 7
    assert (other.params["conv"][0].data == 7).all()


MEMORY_NET = """name: 'memory'
layer { name: 'data' type: 'MemoryData' top: 'data' top: 'label'
  memory_data_param { batch_size: 2 channels: 1 height: 3 width: 4 } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' inner_product_param { num_output: 2 } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }
"""


def test_set_input_arrays_refuses_a_net_without_memory_data(deploy):
    with pytest.raises(RuntimeError, match=r"^set_input_arrays may only be called if the first layer is a "
                                           r"MemoryDataLayer$"):
        deploy.set_input_arrays(np.zeros((2, 3, 4, 4), np.float32), np.zeros(2, np.float32))


@pytest.mark.skipif("MemoryData" not in known_types(), reason="the MemoryData layer is not registered")
def test_set_input_arrays_feeds_the_memory_data_layer(caffe, tmp_path):
    net = caffe.Net(write(tmp_path / "memory.prototxt", MEMORY_NET), caffe.TRAIN)
    data = np.random.rand(4, 1, 3, 4).astype(np.float32)
    labels = np.array([0, 1, 1, 0], dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"^data array has wrong height"):
        net.set_input_arrays(np.zeros((4, 1, 2, 4), np.float32), labels)
    with pytest.raises(RuntimeError, match=r"^data array must be float32$"):
        net.set_input_arrays(data.astype(np.float64), labels)
    with pytest.raises(RuntimeError, match=r"^first dimensions of input arrays must be a multiple of batch size"):
        net.set_input_arrays(data[:3], labels[:3])
    net.set_input_arrays(data, labels)               # 1-D labels become N x 1 x 1 x 1, as pycaffe
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, data[:2])
    np.testing.assert_array_equal(net.blobs["label"].data.ravel(), labels[:2])
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, data[2:])
