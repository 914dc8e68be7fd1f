"""FCN-AlexNet on PASCAL VOC (21 classes): CaffeNet/AlexNet made fully convolutional (fc6 is a 6x6
convolution), scored at stride 32 and upsampled 32x by a kernel of 63; no skips.

Initialised from AlexNet (fc6/fc7 convolutionalized). Unlike the VGG models it normalises the loss per
pixel, so it trains at base_lr 1e-4 with standard momentum 0.9, accumulating gradients over 20 images;
its AlexNet layers have no param specs (biases learn at the base rate, with decay). Published: 48.0 mean IU.

Run `python net.py` (from anywhere) to rewrite the prototxts beside it.
"""
import importlib.util
import pathlib
import sys

from netspec import NetSpec, layers as L
from netspec.coord_map import crop

HERE = pathlib.Path(__file__).resolve().parent
# The shared builders live in prototxt/zoo.py; the zoo is a folder of models, not a package, so load it by path.
_spec = importlib.util.spec_from_file_location("zoo", HERE.parent / "zoo.py")
zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo)


def alexnet(n, bottom, dropout=True):
    """AlexNet's convolutions (conv1 padded by 100), grouped as the original, then fc6/fc7 as convolutions."""
    n.conv1, n.relu1 = zoo.conv_relu(bottom, 96, ks=11, stride=4, pad=100, group=1)
    n.pool1 = zoo.max_pool(n.relu1, 3, stride=2)
    n.norm1 = L.LRN(n.pool1, local_size=5, alpha=1e-4, beta=0.75)
    n.conv2, n.relu2 = zoo.conv_relu(n.norm1, 256, ks=5, pad=2, group=2)
    n.pool2 = zoo.max_pool(n.relu2, 3, stride=2)
    n.norm2 = L.LRN(n.pool2, local_size=5, alpha=1e-4, beta=0.75)
    n.conv3, n.relu3 = zoo.conv_relu(n.norm2, 384, ks=3, pad=1, group=1)
    n.conv4, n.relu4 = zoo.conv_relu(n.relu3, 384, ks=3, pad=1, group=2)
    n.conv5, n.relu5 = zoo.conv_relu(n.relu4, 256, ks=3, pad=1, group=2)
    n.pool5 = zoo.max_pool(n.relu5, 3, stride=2)
    top = n.pool5
    for name, ks in (("6", 6), ("7", 1)):
        n["fc" + name], n["relu" + name] = zoo.conv_relu(top, 4096, ks=ks, pad=0, group=1)
        top = n["relu" + name]
        if dropout:
            n["drop" + name] = top = L.Dropout(top, dropout_ratio=0.5, in_place=True)
    return top


def fcn(split):
    """The net for a data split ('train', 'seg11valid'), or the deploy net (split None)."""
    n = NetSpec()
    if split is None:
        zoo.input_data(n, [("data", 3)])
    else:
        zoo.voc_data(n, split)
    fc7 = alexnet(n, n.data, dropout=split is not None)
    n.score_fr = zoo.score(fc7, 21)
    n.upscore = zoo.upsample(n.score_fr, 21, 63, 32)
    n.score = crop(n.upscore, n.data)
    if split is not None:
        n.loss = zoo.softmax_loss(n.score, n.label, normalize=True)
    return n.to_proto()


SOLVER = zoo.solver_text("train.prototxt", "val.prototxt",
                         test_iter=736, base_lr=1e-4, max_iter=100000, snapshot=4000,
                         momentum=0.9, iter_size=20, normalized_loss=True)


def make_net(out_dir=HERE):
    """Write this model's nets and solver.prototxt into out_dir (default: beside this file)."""
    nets = {"train": fcn("train"), "val": fcn("seg11valid"), "deploy": fcn(None)}
    return zoo.write_model(out_dir, nets, SOLVER)


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
