"""FCN-32s on NYUDv2 color (RGB as BGR, 40 classes).

Trained from VGG16 (fc6/fc7 convolutionalized); its color stream initialises nyud-fcn32s-color-hha.
trainval (795) / test (654).

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
        zoo.nyud_data(n, split, ["color", "label"], names=["data", "label"])
    fc7 = zoo.vgg16(n, n.data, dropout=split is not None)
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
