"""FCN-8s trained all at once on PASCAL VOC (21 classes): the FCN-8s graph with fixed Scale layers
on the skips (pool4 x 0.01, pool3 x 0.0001) so that it trains in one stage straight from VGG16.

Initialised from VGG16 (fc6/fc7 convolutionalized); 300k iterations. Published: 65.4 mean IU.

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
    fc7 = zoo.vgg16(n, n.data, dropout=True)  # the reference deploy.prototxt keeps drop6/drop7
    zoo.fcn_head(n, fc7, 21, 8, n.data, pool4=n.pool4, pool3=n.pool3, skip_scales=(0.01, 0.0001))
    if split is not None:
        n.loss = zoo.softmax_loss(n.score, n.label)
    return n.to_proto()


SOLVER = zoo.solver_text("train.prototxt", "val.prototxt",
                         test_iter=736, base_lr=1e-10, max_iter=300000, snapshot=4000)


def make_net(out_dir=HERE):
    """Write this model's nets and solver.prototxt into out_dir (default: beside this file)."""
    nets = {"train": fcn("train"), "val": fcn("seg11valid"), "deploy": fcn(None)}
    return zoo.write_model(out_dir, nets, SOLVER)


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
