"""FCN-32s on SIFT Flow: one VGG16 body, two heads: semantic (33 classes) and geometric (3 classes).

Trained from VGG16 (fc6/fc7 convolutionalized); initialises siftflow-fcn16s. trainval (2486) / test (200).
The two losses are summed (loss weight 1 each).

Run `python net.py` (from anywhere) to rewrite the prototxts beside it.
"""
import importlib.util
import pathlib
import sys

from netspec import NetSpec

HERE = pathlib.Path(__file__).resolve().parent
# The shared builders live in prototxt/zoo.py; the zoo is a folder of models, not a package, so load it by path.
_spec = importlib.util.spec_from_file_location("zoo", HERE.parent / "zoo.py")
zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo)


def fcn(split):
    """The net for a data split ('trainval', 'test'), or the deploy net (split None)."""
    n = NetSpec()
    if split is None:
        zoo.input_data(n, [("data", 3)])
    else:
        zoo.siftflow_data(n, split)
    fc7 = zoo.vgg16(n, n.data, dropout=split is not None)
    # two heads on one body: 33 semantic classes and 3 geometric classes, each with its own loss
    zoo.fcn_head(n, fc7, 33, 32, n.data, suffix="_sem")
    if split is not None:
        n.loss = zoo.softmax_loss(n.score_sem, n.sem)   # "loss", as the reference names the semantic loss
    zoo.fcn_head(n, fc7, 3, 32, n.data, suffix="_geo")
    if split is not None:
        n.loss_geo = zoo.softmax_loss(n.score_geo, n.geo)
    return n.to_proto()


SOLVER = zoo.solver_text("trainval.prototxt", "test.prototxt",
                         test_iter=200, base_lr=1e-10, max_iter=300000)


def make_net(out_dir=HERE):
    """Write this model's nets and solver.prototxt into out_dir (default: beside this file)."""
    nets = {"trainval": fcn("trainval"), "test": fcn("test"), "deploy": fcn(None)}
    return zoo.write_model(out_dir, nets, SOLVER)


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
