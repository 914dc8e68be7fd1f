"""MobileNet v1 (1.0, 224) as shicai/MobileNet-Caffe's mobilenet_deploy.prototxt (Howard et al.): a 3x3 stride-2
conv1, then thirteen depthwise-separable pairs (a 3x3 depthwise convolution, group = channels, and a 1x1
pointwise "sep" convolution), each convolution followed by BatchNorm (global statistics) and Scale; global
average pooling and the 1x1 fc7 classifier; 224x224 input, batch 1. Param specs and fillers as published.
4,231,976 learned params (and the BatchNorm statistics).

Run `python net.py` (from anywhere) to rewrite deploy.prototxt beside it.
"""
import importlib.util
import pathlib
import sys

from netspec import NetSpec, layers as L, params as P

HERE = pathlib.Path(__file__).resolve().parent
# The shared builders live in prototxt/zoo.py, two folders up; the zoo is a folder of models, not a package, so
# load it by path.
_spec = importlib.util.spec_from_file_location("zoo", HERE.parent.parent / "zoo.py")
zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo)

# (name, depthwise stride, pointwise width) of the depthwise-separable pairs
PAIRS = (("2_1", 1, 64), ("2_2", 2, 128), ("3_1", 1, 128), ("3_2", 2, 256), ("4_1", 1, 256), ("4_2", 2, 512),
         ("5_1", 1, 512), ("5_2", 1, 512), ("5_3", 1, 512), ("5_4", 1, 512), ("5_5", 1, 512), ("5_6", 2, 1024),
         ("6", 1, 1024))
STATISTICS = dict(param=[dict(lr_mult=0, decay_mult=0)] * 3, use_global_stats=True, eps=1e-5)
AFFINE = dict(param=[dict(lr_mult=1, decay_mult=0)] * 2, filler=dict(value=1), bias_term=True,
              bias_filler=dict(value=0))


def conv_bn_relu(n, bottom, name, relu_name, nout, ks, stride, group=1):
    """A convolution without bias (msra filler), its BatchNorm <name>/bn and Scale <name>/scale, and ReLU."""
    n[name] = L.Convolution(bottom, param=zoo.LEARN[:1], num_output=nout, bias_term=False, pad=ks // 2,
                            kernel_size=ks, **({"group": group, "engine": "CAFFE"} if group > 1 else {}),
                            stride=stride, weight_filler=dict(type="msra"))
    top = zoo.batch_norm(n, n[name], f"{name}/bn", f"{name}/scale", STATISTICS, AFFINE)
    n[relu_name] = L.ReLU(top, in_place=True)
    return n[relu_name]


def deploy():
    n = NetSpec()
    top = conv_bn_relu(n, zoo.image_input(n, 1, 224), "conv1", "relu1", 32, 3, 2)
    channels = 32
    for pair, stride, width in PAIRS:
        top = conv_bn_relu(n, top, f"conv{pair}/dw", f"relu{pair}/dw", channels, 3, stride, group=channels)
        top = conv_bn_relu(n, top, f"conv{pair}/sep", f"relu{pair}/sep", width, 1, 1)
        channels = width
    n.pool6 = L.Pooling(top, pool=P.Pooling.AVE, global_pooling=True)
    n.fc7 = L.Convolution(n.pool6, param=zoo.LEARN, num_output=1000, kernel_size=1,
                          weight_filler=dict(type="msra"), bias_filler=dict(type="constant", value=0))
    n.prob = L.Softmax(n.fc7)
    net = n.to_proto()
    net.name = "MOBILENET"
    return net


def make_net(out_dir=HERE):
    """Write deploy.prototxt into out_dir (default: beside this file)."""
    return zoo.write_model(out_dir, {"deploy": deploy()})


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
