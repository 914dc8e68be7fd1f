"""GoogLeNet as BVLC's models/bvlc_googlenet/deploy.prototxt (Szegedy et al., Inception v1) without the two
auxiliary classifiers of training: nine inception modules of four Concat branches (1x1; 1x1 then 3x3; 1x1 then
5x5; 3x3 max pooling then 1x1), LRN after pool1 and conv2, 7x7 average pooling, dropout 0.4, loss3/classifier;
224x224 input, batch 10. Param specs and fillers as published. 6,998,552 params.

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

# (1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj) widths of each inception module
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
# the published xavier std of each branch's convolution
STD = {"1x1": 0.03, "3x3_reduce": 0.09, "3x3": 0.03, "5x5_reduce": 0.2, "5x5": 0.03, "pool_proj": 0.1}


def conv_relu(n, bottom, name, relu_name, nout, ks, std, stride=1):
    """A convolution with GoogLeNet's param specs and fillers (xavier, bias 0.2) and its in-place ReLU."""
    n[name] = L.Convolution(bottom, param=zoo.LEARN, num_output=nout, **({"pad": ks // 2} if ks > 1 else {}),
                            kernel_size=ks, **({"stride": stride} if stride > 1 else {}),
                            weight_filler=dict(type="xavier", std=std),
                            bias_filler=dict(type="constant", value=0.2))
    n[relu_name] = L.ReLU(n[name], in_place=True)
    return n[relu_name]


def inception(n, bottom, module):
    """inception_<module>/...: the four branches, concatenated into inception_<module>/output."""
    widths = dict(zip(STD, INCEPTION[module]))
    prefix = f"inception_{module}/"
    branches = []
    for reduce, conv in (("1x1", None), ("3x3_reduce", "3x3"), ("5x5_reduce", "5x5")):
        top = conv_relu(n, bottom, prefix + reduce, f"{prefix}relu_{reduce}", widths[reduce], 1, STD[reduce])
        if conv:
            top = conv_relu(n, top, prefix + conv, f"{prefix}relu_{conv}", widths[conv], int(conv[0]), STD[conv])
        branches.append(top)
    n[prefix + "pool"] = L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=3, stride=1, pad=1)
    branches.append(conv_relu(n, n[prefix + "pool"], prefix + "pool_proj", f"{prefix}relu_pool_proj",
                              widths["pool_proj"], 1, STD["pool_proj"]))
    n[prefix + "output"] = L.Concat(*branches)
    return n[prefix + "output"]


def deploy():
    n = NetSpec()
    top = conv_relu(n, zoo.image_input(n, 10, 224), "conv1/7x7_s2", "conv1/relu_7x7", 64, 7, 0.1, stride=2)
    n["pool1/3x3_s2"] = zoo.max_pool(top, ks=3, stride=2)
    n["pool1/norm1"] = zoo.lrn(n["pool1/3x3_s2"])
    top = conv_relu(n, n["pool1/norm1"], "conv2/3x3_reduce", "conv2/relu_3x3_reduce", 64, 1, 0.1)
    top = conv_relu(n, top, "conv2/3x3", "conv2/relu_3x3", 192, 3, 0.03)
    n["conv2/norm2"] = zoo.lrn(top)
    n["pool2/3x3_s2"] = top = zoo.max_pool(n["conv2/norm2"], ks=3, stride=2)
    for module in INCEPTION:
        top = inception(n, top, module)
        if module in ("3b", "4e"):
            n[f"pool{module[0]}/3x3_s2"] = top = zoo.max_pool(top, ks=3, stride=2)
    n["pool5/7x7_s1"] = L.Pooling(top, pool=P.Pooling.AVE, kernel_size=7, stride=1)
    n["pool5/drop_7x7_s1"] = L.Dropout(n["pool5/7x7_s1"], dropout_ratio=0.4, in_place=True)
    zoo.classify(n, n["pool5/drop_7x7_s1"], "loss3/classifier", param=zoo.LEARN,
                 weight_filler=dict(type="xavier"), bias_filler=dict(type="constant", value=0))
    net = n.to_proto()
    net.name = "GoogleNet"
    return net


def make_net(out_dir=HERE):
    """Write deploy.prototxt into out_dir (default: beside this file)."""
    return zoo.write_model(out_dir, {"deploy": deploy()})


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
