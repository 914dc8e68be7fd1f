"""FCN-32s on NYUDv2 color + HHA, late fusion (40 classes): a VGG16 stream per modality (layer names
suffixed "color" and "hha"), their fc scores averaged (score_fused), then upsampled 32x.

Initialised from trained nyud-fcn32s-color and nyud-fcn32s-hha, each transplanted with its suffix; this is
why its rate is 1e-12. Initialises nyud-fcn16s-color-hha.

Run `python net.py` (from anywhere) to rewrite the prototxts beside it.
"""
import importlib.util
import pathlib
import sys

from netspec import NetSpec, layers as L, params as P
from netspec.coord_map import crop

HERE = pathlib.Path(__file__).resolve().parent
# The shared builders live in prototxt/zoo.py; the zoo is a folder of models, not a package, so load it by path.
_spec = importlib.util.spec_from_file_location("zoo", HERE.parent / "zoo.py")
zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo)


def fcn(split):
    """The net for a data split ('trainval', 'test'), or the deploy net (split None)."""
    n = NetSpec()
    if split is None:
        zoo.input_data(n, [("color", 3), ("hha", 3)])
    else:
        zoo.nyud_data(n, split, ["color", "hha", "label"])
    for modality in ("color", "hha"):
        fc7 = zoo.vgg16(n, n[modality], suffix=modality, dropout=split is not None)
        n["score_fr" + modality] = zoo.score(fc7, 40)
    n.score_fused = L.Eltwise(n.score_frcolor, n.score_frhha, operation=P.Eltwise.SUM, coeff=[0.5, 0.5])
    n.upscore = zoo.upsample(n.score_fused, 40, 64, 32)
    n.score = crop(n.upscore, n.color)
    if split is not None:
        n.loss = zoo.softmax_loss(n.score, n.label)
    return n.to_proto()


SOLVER = zoo.solver_text("trainval.prototxt", "test.prototxt",
                         test_iter=654, base_lr=1e-12, max_iter=300000, snapshot=2000)


def make_net(out_dir=HERE):
    """Write this model's nets and solver.prototxt into out_dir (default: beside this file)."""
    nets = {"trainval": fcn("trainval"), "test": fcn("test"), "deploy": fcn(None)}
    return zoo.write_model(out_dir, nets, SOLVER)


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
