"""FCN-32s on NYUDv2 color + depth, early fusion (40 classes): color (3 channels) and log depth
(1 channel) are concatenated into a 4-channel input read by conv1_1_bgrd.

Initialised from VGG16: every layer but conv1_1_bgrd copies by name; conv1_1_bgrd takes VGG's conv1_1 for
its BGR channels and their mean for depth (the reference solve.py's surgery). No released weights.

Run `python net.py` (from anywhere) to rewrite the prototxts beside it.
"""
import importlib.util
import pathlib
import sys

from netspec import NetSpec, layers as L

HERE = pathlib.Path(__file__).resolve().parent
# The shared builders live in prototxt/zoo.py; the zoo is a folder of models, not a package, so load it by path.
_spec = importlib.util.spec_from_file_location("zoo", HERE.parent / "zoo.py")
zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo)


def fcn(split):
    """The net for a data split ('trainval', 'test'), or the deploy net (split None)."""
    n = NetSpec()
    if split is None:
        zoo.input_data(n, [("color", 3), ("depth", 1)])
    else:
        zoo.nyud_data(n, split, ["color", "depth", "label"])
    n.data = L.Concat(n.color, n.depth)
    fc7 = zoo.vgg16(n, n.data, dropout=split is not None, conv1_1="conv1_1_bgrd")   # a new 4-channel input
    zoo.fcn_head(n, fc7, 40, 32, n.data)
    if split is not None:
        n.loss = zoo.softmax_loss(n.score, n.label)
    return n.to_proto()


SOLVER = zoo.solver_text("trainval.prototxt", "test.prototxt",
                         test_iter=654, base_lr=1e-10, max_iter=300000, snapshot=2000)


def make_net(out_dir=HERE):
    """Write this model's nets and solver.prototxt into out_dir (default: beside this file)."""
    nets = {"trainval": fcn("trainval"), "test": fcn("test"), "deploy": fcn(None)}
    return zoo.write_model(out_dir, nets, SOLVER)


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
