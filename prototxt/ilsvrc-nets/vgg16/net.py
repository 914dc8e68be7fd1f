"""VGG16 as the authors' VGG_ILSVRC_16_layers_deploy.prototxt (Simonyan and Zisserman, model D): thirteen 3x3
convolutions in five blocks, three fully connected layers; 224x224 input, batch 10. 138,357,544 params.

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


def deploy():
    n = NetSpec()
    zoo.vgg(n, zoo.image_input(n, 10, 224), 16)
    net = n.to_proto()
    net.name = "VGG_ILSVRC_16_layers"
    return net


def make_net(out_dir=HERE):
    """Write deploy.prototxt into out_dir (default: beside this file)."""
    return zoo.write_model(out_dir, {"deploy": deploy()})


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
