"""The classic ImageNet classifiers in prototxt/ilsvrc-nets/: each builds at its published input size, has the
published parameter count, layer names and blob shapes, gives a probability per class from random weights, and
its fully connected layers convolutionalize (python -m weights). Regenerating them is tested with the rest of
the zoo (test_zoo.py)."""
import ast
import glob
import os

import numpy
import pytest

from layers import Net
from netspec import caffe_pb2, io as netio, read_net
from tests.conftest import ROOT
from weights.__main__ import main as weights_main

NETS = ROOT / "prototxt" / "ilsvrc-nets"

# model: (published batch, input size, learned params (BatchNorm statistics apart), BatchNorm statistics, prob shape)
# The counts are the published ones: 60,965,224 for AlexNet and CaffeNet, 138,357,544 / 143,667,240 for VGG16 /
# VGG19, 6,998,552 for GoogLeNet without its auxiliary classifiers, 25,557,032 / 44,549,160 / 60,192,808 for
# ResNet-50/101/152 (convolutions, Scale's affine and fc1000), 1,235,496 for SqueezeNet v1.1, 4,231,976 for
# MobileNet v1; the statistics are 2 x channels + 1 per BatchNorm layer.
PUBLISHED = {
    "alexnet": (10, 227, 60965224, 0, (1000,)),
    "caffenet": (10, 227, 60965224, 0, (1000,)),
    "vgg16": (10, 224, 138357544, 0, (1000,)),
    "vgg19": (10, 224, 143667240, 0, (1000,)),
    "googlenet": (10, 224, 6998552, 0, (1000,)),
    "resnet-50": (1, 224, 25557032, 2 * 26560 + 53, (1000,)),
    "resnet-101": (1, 224, 44549160, 2 * 52672 + 104, (1000,)),
    "resnet-152": (1, 224, 60192808, 2 * 75712 + 155, (1000,)),
    "squeezenet-v1.1": (10, 227, 1235496, 0, (1000, 1, 1)),
    "mobilenet-v1": (1, 224, 4231976, 2 * 10944 + 27, (1000, 1, 1)),
}

# blobs of the published nets at batch 1 (C, H, W), and layers that must exist under the published names
SHAPES = {
    "alexnet": {"conv1": (96, 55, 55), "pool2": (256, 13, 13), "pool5": (256, 6, 6), "fc7": (4096,)},
    "caffenet": {"norm1": (96, 27, 27), "norm2": (256, 13, 13), "pool5": (256, 6, 6)},
    "vgg16": {"conv1_2": (64, 224, 224), "pool5": (512, 7, 7), "fc7": (4096,)},
    "vgg19": {"conv5_4": (512, 14, 14), "pool5": (512, 7, 7)},
    "googlenet": {"pool1/norm1": (64, 56, 56), "inception_3a/output": (256, 28, 28),
                  "inception_4e/output": (832, 14, 14), "inception_5b/output": (1024, 7, 7),
                  "pool5/7x7_s1": (1024, 1, 1)},
    "resnet-50": {"pool1": (64, 56, 56), "res2c": (256, 56, 56), "res3d": (512, 28, 28), "res4f": (1024, 14, 14),
                  "res5c": (2048, 7, 7), "pool5": (2048, 1, 1)},
    "resnet-101": {"res3b3": (512, 28, 28), "res4b22": (1024, 14, 14), "res5c": (2048, 7, 7)},
    "resnet-152": {"res3b7": (512, 28, 28), "res4b35": (1024, 14, 14), "res5c": (2048, 7, 7)},
    "squeezenet-v1.1": {"pool1": (64, 56, 56), "fire3/concat": (128, 56, 56), "pool5": (256, 14, 14),
                        "conv10": (1000, 14, 14)},
    "mobilenet-v1": {"conv1": (32, 112, 112), "conv2_2/dw": (64, 56, 56), "conv5_6/dw": (512, 7, 7),
                     "conv6/sep": (1024, 7, 7), "pool6": (1024, 1, 1)},
}
LAYERS = {
    "alexnet": ["conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3", "relu3", "conv4",
                "relu4", "conv5", "relu5", "pool5", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8", "prob"],
    "caffenet": ["conv1", "relu1", "pool1", "norm1", "conv2", "relu2", "pool2", "norm2", "conv3", "relu3", "conv4",
                 "relu4", "conv5", "relu5", "pool5", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8", "prob"],
    "googlenet": ["conv1/7x7_s2", "conv1/relu_7x7", "pool1/3x3_s2", "pool1/norm1", "conv2/3x3_reduce",
                  "inception_4c/5x5_reduce", "inception_4c/relu_pool_proj", "pool4/3x3_s2", "pool5/drop_7x7_s1",
                  "loss3/classifier", "prob"],
    "resnet-50": ["conv1", "bn_conv1", "scale_conv1", "conv1_relu", "res2a_branch1", "bn2a_branch1",
                  "scale2a_branch1", "res2a_branch2a", "bn2a_branch2a", "scale2a_branch2a", "res2a_branch2a_relu",
                  "res4f_branch2c", "scale5c_branch2c", "res5c", "res5c_relu", "pool5", "fc1000", "prob"],
    "resnet-101": ["res3b1_branch2a", "bn4b22_branch2c", "res5b_relu"],
    "mobilenet-v1": ["conv1/bn", "conv1/scale", "relu1", "conv2_1/dw", "conv2_1/dw/bn", "relu2_1/dw",
                     "conv2_1/sep/scale", "conv6/sep", "relu6/sep", "pool6", "fc7", "prob"],
    "squeezenet-v1.1": ["relu_conv1", "fire2/squeeze1x1", "fire2/relu_expand3x3", "fire9/concat", "drop9",
                        "conv10", "relu_conv10", "pool10", "prob"],
}


def deploy(model, batch=None):
    param = read_net(NETS / model / "deploy.prototxt")
    if batch:
        param.layer[0].input_param.shape[0].dim[0] = batch
    return param


def fill_randomly(net, seed=0):
    """He-scaled random weights, cheaply: one block of normal numbers repeated over each blob (VGG has 138M).
    BatchNorm statistics: small means, variances around 1, scale factor 1."""
    rng = numpy.random.default_rng(seed)
    noise = rng.standard_normal(1 << 16, dtype=numpy.float32)
    for layer in net.layers:
        for i, blob in enumerate(layer.blobs):
            if layer.type == "BatchNorm":
                blob.data[...] = (0.1 * rng.standard_normal(blob.shape), 0.5 + rng.random(blob.shape), 1)[i]
            else:
                fan_in = max(1, int(numpy.prod(blob.shape[1:])))
                scaled = numpy.roll(noise, blob.count) * numpy.float32(numpy.sqrt(2.0 / fan_in))
                flat = blob.data.reshape(-1)
                whole = flat.size // scaled.size * scaled.size
                flat[:whole].reshape(-1, scaled.size)[...] = scaled          # tiled in place, no temporaries
                flat[whole:] = scaled[:flat.size - whole]


def test_every_net_is_here():
    assert sorted(p.name for p in NETS.iterdir() if (p / "deploy.prototxt").is_file()) == sorted(PUBLISHED)


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_published_input_parameter_count_and_output(model):
    batch, size, learned, statistics, prob = PUBLISHED[model]
    param = deploy(model)
    assert param.layer[0].type == "Input" and param.layer[0].name == "data"
    assert list(param.layer[0].input_param.shape[0].dim) == [batch, 3, size, size]
    net = Net(deploy(model, batch=1), phase="TEST")
    counts = {True: 0, False: 0}
    for layer in net.layers:
        for blob in layer.blobs:
            counts[layer.type == "BatchNorm"] += blob.count
    assert (counts[False], counts[True]) == (learned, statistics)
    for name, shape in SHAPES[model].items():
        assert net.blobs[name].shape == (1, *shape), name
    names = [layer.name for layer in param.layer]
    assert len(names) == len(set(names))
    for name in LAYERS.get(model, []):
        assert name in names, name
    fill_randomly(net)
    image = numpy.random.default_rng(1).normal(0, 50, (1, 3, size, size)).astype(numpy.float32)
    out = net.forward(data=image)["prob"]
    assert out.shape == (1, *prob)
    assert numpy.all(out >= 0) and numpy.allclose(out.reshape(-1).sum(), 1, atol=1e-5)


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_resnet_depths_share_one_body(depth):
    param = deploy(f"resnet-{depth}")
    assert param.name == f"ResNet-{depth}"
    blocks = [layer.name for layer in param.layer if layer.type == "Eltwise"]
    assert len(blocks) == {50: 16, 101: 33, 152: 50}[depth]
    convolutions = sum(layer.type == "Convolution" for layer in param.layer)
    assert convolutions == 1 + 3 * len(blocks) + 4          # conv1, three per block, a projection per stage
    for layer in param.layer:
        if layer.type == "Convolution":
            assert not layer.convolution_param.bias_term, layer.name
        if layer.type == "BatchNorm":
            assert layer.batch_norm_param.use_global_stats, layer.name
        if layer.type == "Scale":
            assert layer.scale_param.bias_term, layer.name


def test_mobilenet_depthwise_layers_are_a_group_per_channel():
    depthwise = [layer for layer in deploy("mobilenet-v1").layer if layer.name.endswith("/dw")
                 and layer.type == "Convolution"]
    assert len(depthwise) == 13
    net = Net(deploy("mobilenet-v1"), phase="TEST")
    for layer in depthwise:
        p = layer.convolution_param
        assert p.group == p.num_output == net.params[layer.name][0].shape[0], layer.name
        assert net.params[layer.name][0].shape[1:] == (1, 3, 3), layer.name


@pytest.mark.parametrize("model", ["alexnet", "caffenet", "vgg16", "vgg19"])
def test_convolutionalize_reads_each_classifiers_geometry(model, tmp_path, capsys):
    """python -m weights convolutionalize WEIGHTS OUT --classifier deploy.prototxt: fc6 takes pool5's C x H x W
    from the net, fc7 becomes 1x1, fc8 (the classifier) is dropped. The fc layers here have the published inputs
    but only 8 outputs: the geometry is the net's, the file stays small."""
    pool5 = SHAPES[model].get("pool5", SHAPES["alexnet"]["pool5"])
    weights = caffe_pb2.NetParameter()
    for name, shape in (("fc6", (8, int(numpy.prod(pool5)))), ("fc7", (8, 8)), ("fc8", (5, 8))):
        layer = weights.layer.add(name=name, type="InnerProduct")
        value = numpy.arange(numpy.prod(shape), dtype=numpy.float32).reshape(shape)
        layer.blobs.add().CopyFrom(netio.array_to_blob(value))
        layer.blobs.add().CopyFrom(netio.array_to_blob(numpy.ones(shape[0], numpy.float32)))
    netio.write_caffemodel(weights, str(tmp_path / "classifier.caffemodel"))
    code = weights_main(["convolutionalize", str(tmp_path / "classifier.caffemodel"), str(tmp_path / "fcn.caffemodel"),
                         "--classifier", str(NETS / model / "deploy.prototxt")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"converted fc6: InnerProduct 8x{numpy.prod(pool5)} -> Convolution 8x{'x'.join(map(str, pool5))}" in out
    result = {layer.name: layer for layer in netio.read_caffemodel(str(tmp_path / "fcn.caffemodel")).layer}
    assert sorted(result) == ["fc6", "fc7"] and all(layer.type == "Convolution" for layer in result.values())
    fc6 = netio.blob_to_array(result["fc6"].blobs[0])
    assert fc6.shape == (8, *pool5)
    assert numpy.array_equal(fc6.reshape(8, -1), netio.blob_to_array(weights.layer[0].blobs[0]))
    assert netio.blob_to_array(result["fc7"].blobs[0]).shape == (8, 8, 1, 1)


def test_setup_installs_the_classifiers():
    """setup.py's data_files (its ZOO list, evaluated as setup.py evaluates it) carry every net.py and deploy."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    zoo = next(node.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "ZOO")
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        installed = eval(compile(ast.Expression(zoo), "setup.py", "eval"), {"os": os, "glob": glob})
    finally:
        os.chdir(here)
    files = {f for _, group in installed for f in group}
    for model in PUBLISHED:
        for name in ("net.py", "deploy.prototxt"):
            assert f"prototxt/ilsvrc-nets/{model}/{name}" in files
