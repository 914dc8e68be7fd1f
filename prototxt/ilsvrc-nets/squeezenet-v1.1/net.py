"""SqueezeNet v1.1 as forresti/SqueezeNet's SqueezeNet_v1.1/deploy.prototxt (Iandola et al.): a 3x3 stride-2
conv1, eight fire modules (a 1x1 squeeze, then 1x1 and 3x3 expands concatenated), max pooling after conv1, fire3
and fire5, dropout, the 1x1 conv10 classifier and global average pooling; 227x227 input, batch 10. 1,235,496
params.

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

# (squeeze, expand) widths of fire2 .. fire9; max pooling follows conv1, fire3 and fire5
FIRES = {2: (16, 64), 3: (16, 64), 4: (32, 128), 5: (32, 128), 6: (48, 192), 7: (48, 192), 8: (64, 256),
         9: (64, 256)}


def conv_relu(n, bottom, name, relu_name, nout, ks, **kwargs):
    n[name] = L.Convolution(bottom, num_output=nout, **({"pad": 1} if ks == 3 else {}), kernel_size=ks, **kwargs)
    n[relu_name] = L.ReLU(n[name], in_place=True)
    return n[relu_name]


def fire(n, bottom, i):
    """fire<i>/...: squeeze1x1, then expand1x1 and expand3x3 of its output, concatenated into fire<i>/concat."""
    squeeze, expand = FIRES[i]
    p = f"fire{i}/"
    top = conv_relu(n, bottom, p + "squeeze1x1", p + "relu_squeeze1x1", squeeze, 1)
    one = conv_relu(n, top, p + "expand1x1", p + "relu_expand1x1", expand, 1)
    three = conv_relu(n, top, p + "expand3x3", p + "relu_expand3x3", expand, 3)
    n[p + "concat"] = L.Concat(one, three)
    return n[p + "concat"]


def deploy():
    n = NetSpec()
    n.conv1 = L.Convolution(zoo.image_input(n, 10, 227), num_output=64, kernel_size=3, stride=2)
    n.relu_conv1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = top = zoo.max_pool(n.relu_conv1, ks=3, stride=2)
    for i in FIRES:
        top = fire(n, top, i)
        if i in (3, 5):
            n[f"pool{i}"] = top = zoo.max_pool(top, ks=3, stride=2)
    n.drop9 = L.Dropout(top, dropout_ratio=0.5, in_place=True)
    top = conv_relu(n, n.drop9, "conv10", "relu_conv10", 1000, 1)
    n.pool10 = L.Pooling(top, pool=P.Pooling.AVE, global_pooling=True)
    n.prob = L.Softmax(n.pool10)
    return n.to_proto()


def make_net(out_dir=HERE):
    """Write deploy.prototxt into out_dir (default: beside this file)."""
    return zoo.write_model(out_dir, {"deploy": deploy()})


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
