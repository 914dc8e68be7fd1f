"""ResNet-50 as KaimingHe/deep-residual-networks' prototxt/ResNet-50-deploy.prototxt: bottleneck blocks
(3, 4, 6, 3) of convolutions without bias, each followed by BatchNorm (global statistics) and Scale;
224x224 input, batch 1. 25,557,032 learned params (and the BatchNorm statistics). The body is zoo.resnet.

Run `python net.py` (from anywhere) to rewrite deploy.prototxt beside it.
"""
import importlib.util
import pathlib
import sys

from netspec import NetSpec

HERE = pathlib.Path(__file__).resolve().parent
# The shared builders live in prototxt/zoo.py, two folders up; the zoo is a folder of models, not a package, so
# load it by path.
_spec = importlib.util.spec_from_file_location("zoo", HERE.parent.parent / "zoo.py")
zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo)

DEPTH = 50


def deploy():
    n = NetSpec()
    zoo.resnet(n, zoo.image_input(n, 1, 224), DEPTH)
    net = n.to_proto()
    net.name = f"ResNet-{DEPTH}"
    return net


def make_net(out_dir=HERE):
    """Write deploy.prototxt into out_dir (default: beside this file)."""
    return zoo.write_model(out_dir, {"deploy": deploy()})


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
