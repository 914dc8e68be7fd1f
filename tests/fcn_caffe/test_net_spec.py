"""caffe.NetSpec, caffe.layers and caffe.params as pycaffe's test_net_spec.py uses them, and the prototxt text: an
FCN-8s written the way FCN's net.py writes it prints as the reference train.prototxt (made by pycaffe)."""
import pytest

from tests.conftest import REFERENCE
from tests.fcn_caffe.test_pycaffe import write
from tests.netspec.test_spec import CAFFE_STYLE_NET_PY


def lenet(caffe, batch_size):
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]), dict(dim=[batch_size, 1, 1, 1])],
                                  transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def anon_lenet(caffe, batch_size):
    L, P = caffe.layers, caffe.params
    data, label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]), dict(dim=[batch_size, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type="xavier"))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type="xavier"))
    return L.SoftmaxWithLoss(ip2, label).to_proto()


def load_net(caffe, tmp_path, net_proto):
    return caffe.Net(write(tmp_path / "net.prototxt", str(net_proto)), caffe.TEST)


def test_lenet(caffe, tmp_path):
    for make in (lenet, anon_lenet):
        net_proto = make(caffe, 50)
        assert net_proto.layer[6].bottom == net_proto.layer[6].top          # the ReLU is in place
        assert len(load_net(caffe, tmp_path, net_proto).layers) == 9


def test_automatic_names(caffe):
    assert [layer.name for layer in anon_lenet(caffe, 50).layer] == [
        "DummyData1", "Convolution1", "Pooling1", "Convolution2", "Pooling2", "InnerProduct1", "ReLU1",
        "InnerProduct2", "SoftmaxWithLoss1"]


def test_zero_tops(caffe, tmp_path):
    L = caffe.layers
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    assert len(load_net(caffe, tmp_path, n.to_proto()).forward()) == 0


def test_a_bottom_that_is_not_a_top_is_a_type_error(caffe):
    data = caffe.layers.DummyData(ntop=2)            # a tuple of two Tops
    with pytest.raises(TypeError, match=r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$"):
        caffe.layers.Silence(data, ntop=0)
    caffe.layers.Silence(*data, ntop=0)


def test_a_missing_top_is_a_key_error(caffe):
    with pytest.raises(KeyError):
        caffe.NetSpec().nothing
    assert not hasattr(caffe.NetSpec(), "nothing")


def test_net_spec_module(caffe):
    from fcn_caffe import net_spec
    assert net_spec.param_name_dict()["Convolution"] == "convolution"
    assert net_spec.param_name_dict()["Pooling"] == "pooling"
    assert caffe.net_spec.NetSpec is caffe.NetSpec and caffe.to_proto is net_spec.to_proto


def test_a_caffe_net_py_prints_the_reference_prototxt(caffe, request):
    """FCN-8s written as FCN's net.py writes it prints what pycaffe printed: the reference train.prototxt."""
    source = CAFFE_STYLE_NET_PY
    if request.node.callspec.params["caffe"] == "fcn_caffe":
        source = source.replace("import caffe\n", "import fcn_caffe as caffe\n").replace(
            "from caffe import", "from fcn_caffe import").replace("from caffe.", "from fcn_caffe.")
    scope = {}
    exec(compile(source, "net.py", "exec"), scope)
    assert scope["TRAIN"] == (REFERENCE / "voc-fcn8s" / "train.prototxt").read_text()
