"""netspec.spec: Caffe's NetSpec (net_spec.py) on our caffe_pb2."""
import pytest

import netspec
from netspec import NetSpec, caffe_pb2 as pb, layers as L, params as P, parse_text, read_net, to_proto, to_text
from tests.conftest import REFERENCE

LEARN = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]


def layer(net, name):
    return next(lp for lp in net.layer if lp.name == name)


def test_tops_name_layers_and_in_place_layers_write_their_bottom():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.conv1 = L.Convolution(n.data, num_output=4, kernel_size=3)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, kernel_size=2, stride=2)
    net = n.to_proto()
    assert [(lp.name, lp.type, list(lp.bottom), list(lp.top)) for lp in net.layer] == [
        ("data", "Input", [], ["data"]),
        ("conv1", "Convolution", ["data"], ["conv1"]),
        ("relu1", "ReLU", ["conv1"], ["conv1"]),       # in place: named after its top, writes conv1
        ("pool1", "Pooling", ["conv1"], ["pool1"]),     # reads the in-place blob
    ]


def test_keyword_arguments_go_to_the_type_param_or_the_layer():
    n = NetSpec()
    n.data, n.label = L.Input(ntop=2, shape=[dict(dim=[1, 3, 8, 8]), dict(dim=[1, 1, 8, 8])])
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=3, pad=1, param=LEARN,
                           weight_filler=dict(type="gaussian", std=0.01), loss_weight=0,
                           include=dict(phase=pb.TRAIN))
    n.up = L.Deconvolution(n.conv, num_output=4, kernel_size=4, stride=2, bias_term=False, param=[dict(lr_mult=0)])
    n.pool = L.Pooling(n.conv, pool=P.Pooling.AVE, kernel_size=2)
    n.loss = L.SoftmaxWithLoss(n.pool, n.label, ignore_label=255, loss_param=dict(normalize=False))
    net = n.to_proto()
    conv = layer(net, "conv")
    assert conv.convolution_param == pb.ConvolutionParameter(
        num_output=4, kernel_size=[3], pad=[1], weight_filler=pb.FillerParameter(type="gaussian", std=0.01))
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert conv.loss_weight == [0]                    # a single value for a repeated field: a one-element list
    assert conv.include[0].phase == pb.TRAIN          # a dict for a repeated message: one message
    # Caffe makes Deconvolution users spell convolution_param=dict(...); we route its keywords there too
    assert layer(net, "up").convolution_param == pb.ConvolutionParameter(
        num_output=4, kernel_size=[4], stride=[2], bias_term=False)
    assert layer(net, "pool").pooling_param.pool == pb.PoolingParameter.AVE
    assert layer(net, "loss").loss_param == pb.LossParameter(ignore_label=255, normalize=False)


def test_lists_fill_repeated_fields_and_enums_read_by_value_or_name():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.conv = L.Convolution(n.data, num_output=2, kernel_size=[3, 5], stride=(1, 2))
    n.a = L.Pooling(n.conv, pool="MAX", kernel_size=2)
    n.b = L.Eltwise(n.a, n.a, operation=P.Eltwise.PROD, coeff=[0.5, 2.0])
    net = n.to_proto()
    assert list(layer(net, "conv").convolution_param.kernel_size) == [3, 5]
    assert list(layer(net, "conv").convolution_param.stride) == [1, 2]
    assert layer(net, "a").pooling_param.pool == pb.PoolingParameter.MAX
    assert layer(net, "b").eltwise_param.operation == pb.EltwiseParameter.PROD == 0
    assert list(layer(net, "b").eltwise_param.coeff) == [0.5, 2.0]
    assert P.Pooling.MAX == pb.PoolingParameter.MAX and P.Pooling.AVE == pb.PoolingParameter.AVE


def test_unnamed_tops_get_automatic_names_and_multi_top_layers_return_tuples():
    n = NetSpec()
    data, label = L.Python(module="m", layer="Data", ntop=2)
    silence = L.Silence(label, ntop=0)
    n.out = L.ReLU(L.Convolution(data, num_output=1, kernel_size=1))
    n.silence = silence
    names = [(lp.name, list(lp.top)) for lp in n.to_proto().layer]
    assert names == [("Python1", ["Python1", "Python2"]), ("Convolution1", ["Convolution1"]),
                     ("out", ["out"]), ("silence", [])]
    assert isinstance(silence, netspec.Function)


def test_module_to_proto_and_top_to_proto_collect_what_a_top_needs():
    data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    conv = L.Convolution(data, num_output=1, kernel_size=1)
    unused = L.ReLU(data)
    assert [lp.type for lp in to_proto(conv).layer] == ["Input", "Convolution"]
    assert [lp.type for lp in conv.to_proto().layer] == ["Input", "Convolution"]
    assert [lp.type for lp in to_proto(conv, unused).layer] == ["Input", "Convolution", "ReLU"]


def test_item_access_update_and_explicit_names():
    n = NetSpec()
    n["data"] = L.Input(name="input", shape=dict(dim=[1, 3, 4, 4]))
    n["conv1_1"] = L.Convolution(n["data"], num_output=4, kernel_size=3)
    n.update("conv1_1", dict(pad=100))
    assert "conv1_1" in n and n.keys() == ["data", "conv1_1"] and n.vals()[1] is n.conv1_1
    net = n.to_proto()
    assert [lp.name for lp in net.layer] == ["input", "conv1_1"]    # name= overrides the top's name
    assert list(layer(net, "input").top) == ["data"]
    assert list(layer(net, "conv1_1").convolution_param.pad) == [100]


def test_the_proto_prints_as_prototxt_and_reads_back():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=3, param=LEARN)
    n.drop = L.Dropout(n.conv, dropout_ratio=0.5, in_place=True)
    net = n.to_proto()
    text = to_text(net)
    assert 'name: "drop"' in text and "dropout_ratio: 0.5" in text
    assert parse_text(text, pb.NetParameter) == net == read_net(str(net))   # str() prints prototxt, as in Caffe


# A net.py in Caffe's NetSpec idiom, exactly as a Caffe user writes it: it must run after only its imports change.
CAFFE_STYLE_NET_PY = '''
import caffe
from caffe import layers as L, params as P
from caffe.coord_map import crop


def conv_relu(bottom, nout, ks=3, stride=1, pad=1):
    conv = L.Convolution(bottom, kernel_size=ks, stride=stride, num_output=nout, pad=pad,
                         param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    return conv, L.ReLU(conv, in_place=True)


def fcn(split):
    n = caffe.NetSpec()
    params = dict(sbdd_dir='../data/sbdd/dataset', seed=1337, split=split, mean=(104.00699, 116.66877, 122.67892))
    n.data, n.label = L.Python(module='voc_layers', layer='SBDDSegDataLayer', ntop=2, param_str=str(params))
    bottom = n.data
    for block, (convs, width) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], 1):
        for i in range(1, convs + 1):
            conv, relu = conv_relu(bottom, width, pad=100 if block == i == 1 else 1)
            n['conv%d_%d' % (block, i)], n['relu%d_%d' % (block, i)] = conv, relu
            bottom = relu
        n['pool%d' % block] = bottom = L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.fc6, n.relu6 = conv_relu(n.pool5, 4096, ks=7, pad=0)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7, n.relu7 = conv_relu(n.drop6, 4096, ks=1, pad=0)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    score = dict(num_output=21, kernel_size=1, pad=0,
                 param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    up = lambda bottom, k, s: L.Deconvolution(
        bottom, convolution_param=dict(num_output=21, kernel_size=k, stride=s, bias_term=False),
        param=[dict(lr_mult=0)])
    n.score_fr = L.Convolution(n.drop7, **score)
    n.upscore2 = up(n.score_fr, 4, 2)
    n.score_pool4 = L.Convolution(n.pool4, **score)
    n.score_pool4c = crop(n.score_pool4, n.upscore2)
    n.fuse_pool4 = L.Eltwise(n.upscore2, n.score_pool4c, operation=P.Eltwise.SUM)
    n.upscore_pool4 = up(n.fuse_pool4, 4, 2)
    n.score_pool3 = L.Convolution(n.pool3, **score)
    n.score_pool3c = crop(n.score_pool3, n.upscore_pool4)
    n.fuse_pool3 = L.Eltwise(n.upscore_pool4, n.score_pool3c, operation=P.Eltwise.SUM)
    n.upscore8 = up(n.fuse_pool3, 16, 8)
    n.score = crop(n.upscore8, n.data)
    n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(normalize=False, ignore_label=255))
    return n.to_proto()


TRAIN = str(fcn('train'))
'''


def test_a_caffe_net_py_runs_after_changing_its_imports_and_matches_the_reference():
    source = CAFFE_STYLE_NET_PY.replace("import caffe\n", "import netspec as caffe\n").replace(
        "from caffe import", "from netspec import").replace("from caffe.coord_map", "from netspec.coord_map")
    scope = {}
    exec(compile(source, "net.py", "exec"), scope)
    assert read_net(scope["TRAIN"]) == read_net(REFERENCE / "voc-fcn8s" / "train.prototxt")


# ---- errors ------------------------------------------------------------------------------------

def test_a_misspelt_keyword_names_the_call_and_the_messages_searched():
    data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    with pytest.raises(ValueError, match=r"L\.Convolution\(kernal_size=\.\.\.\).*convolution_param or LayerParameter"):
        L.Convolution(data, num_output=4, kernal_size=3)
    with pytest.raises(ValueError, match=r"FillerParameter has no field 'typo'"):
        L.Convolution(data, num_output=4, kernel_size=3, weight_filler=dict(typo="xavier"))


def test_wrong_value_types_and_unknown_enum_names_are_reported():
    data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    with pytest.raises(TypeError, match=r"convolution_param\.num_output"):
        L.Convolution(data, num_output="four", kernel_size=3)
    with pytest.raises(TypeError, match=r"give it a dict"):
        L.Convolution(data, num_output=4, kernel_size=3, weight_filler="xavier")
    with pytest.raises(ValueError, match=r"'MAXIMUM' is not a PoolMethod.*MAX, AVE"):
        L.Pooling(data, pool="MAXIMUM", kernel_size=2)
    with pytest.raises(AttributeError, match=r"PoolingParameter has no value MAXIMUM"):
        P.Pooling.MAXIMUM
    with pytest.raises(AttributeError, match=r"no NopeParameter"):
        P.Nope


def test_bottoms_must_be_tops_and_netspec_attributes_must_be_tops():
    with pytest.raises(TypeError, match=r"^ReLU input 0 is not a Top \(type is <class 'str'>\)$"):
        L.ReLU("data")
    n = NetSpec()
    with pytest.raises(TypeError, match=r"unpack it"):
        n.pair = L.Python(module="m", layer="Data", ntop=2)
    with pytest.raises(AttributeError, match=r"NetSpec has no top 'missing'"):
        n.missing
    with pytest.raises(KeyError):                # what pycaffe's NetSpec raises
        n.missing


def test_two_layers_writing_one_top_is_an_error():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    conv = L.Convolution(n.data, num_output=1, kernel_size=1)    # unnamed: automatically "Convolution1"
    n.Convolution1 = L.Pooling(n.data, kernel_size=2)            # a name that collides with it
    n.out = L.ReLU(conv)
    with pytest.raises(ValueError, match=r"layers 'Convolution1' \(Pooling\) and 'Convolution1' \(Convolution\) "
                                         r"both write top 'Convolution1'"):
        n.to_proto()
