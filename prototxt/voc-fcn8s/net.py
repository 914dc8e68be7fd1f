"""FCN-8s on PASCAL VOC (21 classes): FCN-16s plus a skip from pool3, fused at stride 8.

Initialised from a trained voc-fcn16s (score_pool3 starts at zero); the last stage of the staged schedule.
Published: 65.5 mean IU on seg11valid, 67.2 on seg12test.

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
    """The net for a data split ('train', 'seg11valid'), or the deploy net (split None)."""
    n = NetSpec()
    if split is None:
        zoo.input_data(n, [("data", 3)])
    else:
        zoo.voc_data(n, split)
    fc7 = zoo.vgg16(n, n.data, dropout=split is not None)
    zoo.fcn_head(n, fc7, 21, 8, n.data, pool4=n.pool4, pool3=n.pool3)
    if split is not None:
        n.loss = zoo.softmax_loss(n.score, n.label)
    return n.to_proto()


SOLVER = zoo.solver_text("train.prototxt", "val.prototxt",
                         test_iter=736, base_lr=1e-14, max_iter=100000, snapshot=4000)


def make_net(out_dir=HERE):
    """Write this model's nets and solver.prototxt into out_dir (default: beside this file)."""
    nets = {"train": fcn("train"), "val": fcn("seg11valid"), "deploy": fcn(None)}
    return zoo.write_model(out_dir, nets, SOLVER)


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
